"""img2img: the Stability SDXL 1.0 image-to-image contract, served on Amazon Bedrock."""

__version__ = "0.1.0"
