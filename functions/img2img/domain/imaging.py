"""Image preparation: decode, guard, orient, convert and fit the source to a size SDXL takes.
(Skeleton: the interface is fixed, the body is being written.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from img2img.domain.request import OutputFormat, ResizeMode

# SDXL 1.0 generates only these sizes (width, height).
ALLOWED_SIZES: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (1216, 832),
    (1344, 768),
    (1536, 640),
    (640, 1536),
    (768, 1344),
    (832, 1216),
    (896, 1152),
)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000


@dataclass(frozen=True)
class PreparedImage:
    png: bytes  # the PNG the model receives
    width: int
    height: int
    source_format: str  # "png" | "jpeg" | "webp"
    source_width: int  # as stored, before EXIF orientation
    source_height: int
    resize_mode: ResizeMode
    passthrough: bool  # True when `png` is the source's own bytes, untouched
    operations: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("exif-rotate-90", "fit")


def prepare_image(data: bytes, resize_mode: ResizeMode, limits: ImageLimits) -> PreparedImage:
    raise NotImplementedError


def encode_result(image_bytes: bytes, output_format: OutputFormat) -> bytes:
    """Re-encode the model's result (PNG or JPEG) in the requested format; PNG passes through."""
    raise NotImplementedError
