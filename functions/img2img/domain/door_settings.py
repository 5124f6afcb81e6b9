"""What both doors need to know about their environment (a slice of config.Settings, so the
domain does not depend on how settings are read)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from img2img.domain.imaging.guards import ImageLimits


@dataclass(frozen=True)
class DoorSettings:
    input_bucket: str
    output_bucket: str
    allowed_model_ids: tuple[str, ...]
    default_model_id: str
    max_image_bytes: int
    upload_max_bytes: int
    presign_expiry_seconds: int
    max_manifest_bytes: int = 1024 * 1024
    max_image_pixels: int = ImageLimits.max_pixels
    # A manifest fans out into one queued message per image, sent 10 to a SendMessageBatch (its
    # limit): 1,000 images are 100 batches, a few seconds of the worker's 120 s timeout, with
    # room for botocore's retries. Each image then runs as its own job, with its own receives.
    max_manifest_images: int = 1000

    @cached_property
    def image_limits(self) -> ImageLimits:
        """The one ImageLimits of a deployment: admission's and the pipeline's (wiring.py)."""
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)
