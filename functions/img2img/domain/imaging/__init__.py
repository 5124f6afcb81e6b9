"""Image preparation: decode, guard, orient, convert and fit the source to a size SDXL takes,
and re-encode the model's result in the format the caller asked for.

    formats.py       format sniffing (by content, never by name); MIME types, file extensions
    guards.py        ImageLimits; byte, format, pixel (from the header) and frame checks before
                     decoding; decoder errors mapped to domain errors
    png_verifier.py  every PNG checked chunk by chunk and its pixel stream inflated once
    geometry.py      SDXL sizes, EXIF orientation, fit / pad / reject
    colour.py        16-bit, 1-bit, palette, CMYK and alpha conversions; ICC -> sRGB
    encoding.py      metadata-free PNG/JPEG/WebP encoding; the model's result re-encoded
    preparation.py   prepare_image: the order of work from the untrusted source to the PNG sent
"""

from __future__ import annotations

from img2img.domain.imaging.colour import ALPHA_BACKGROUND
from img2img.domain.imaging.encoding import encode_result
from img2img.domain.imaging.formats import ACCEPTED_FORMATS, FILE_EXTENSIONS, MIME_TYPES, detect_format
from img2img.domain.imaging.geometry import ALLOWED_SIZES, MAX_ASPECT_RATIO, PAD_COLOUR, nearest_allowed_size
from img2img.domain.imaging.guards import ImageLimits
from img2img.domain.imaging.preparation import PreparedImage, prepare_image

__all__ = [
    "ACCEPTED_FORMATS",
    "ALLOWED_SIZES",
    "ALPHA_BACKGROUND",
    "FILE_EXTENSIONS",
    "MAX_ASPECT_RATIO",
    "MIME_TYPES",
    "PAD_COLOUR",
    "ImageLimits",
    "PreparedImage",
    "detect_format",
    "encode_result",
    "nearest_allowed_size",
    "prepare_image",
]
