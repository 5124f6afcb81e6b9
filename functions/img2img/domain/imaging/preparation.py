"""prepare_image: the source, guarded, decoded, oriented, converted and fitted to a size SDXL takes.

Inputs are untrusted. The order of work is chosen so that cheap checks come first and nothing
is decoded until the byte cap, the format (judged by content, never by name), the frame count
and the declared pixel count have passed. Pixels are then decoded at the smallest size that
still serves the target (JPEG DCT scaling), resized, and only then colour-converted, rotated
and padded, so the expensive steps touch about one megapixel, not the source's twelve.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import ImageFile

from img2img.domain.imaging.colour import resizable, to_srgb
from img2img.domain.imaging.encoding import transient_png
from img2img.domain.imaging.geometry import (
    ALLOWED_SIZES,
    SWAPS_AXES,
    TRANSPOSE,
    Plan,
    draft,
    exif_orientation,
    pad,
    resize,
    target_size,
)
from img2img.domain.imaging.guards import ImageLimits, decoding, open_source
from img2img.domain.request import ResizeMode

# The prepared PNG is a transient payload (decoded once by the model, never stored for users),
# written by transient_png: no row filters, stored uncompressed (zlib level 0). On a photo-like
# 1152x896 picture that takes ~5 ms, against ~35 ms at level 1, ~70 ms for Pillow's encoder at
# level 1 (its per-row filter search) and ~380 ms at its default 6. The price is size: 3.1 MB
# (4.1 MB of base64 in the request) where level 1 makes 1.2-1.3 MB of a noisy photo; every SDXL
# size stays far below InvokeModel's 25 MB body limit.
_TRANSIENT_PNG_LEVEL = 0


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
    operations: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("exif-transpose 6", "fit-crop ...")


def prepare_image(data: bytes, resize_mode: ResizeMode, limits: ImageLimits) -> PreparedImage:
    """Turn the caller's source image into a PNG of an SDXL size.

    Raises UnsupportedImage (not a still PNG/JPEG/WebP, or corrupt), ImageTooLarge (byte or
    pixel cap, checked before decoding) or InvalidRequest (resize_mode "reject" and the size is
    not allowed; an aspect ratio beyond MAX_ASPECT_RATIO)."""
    fmt, png, source = open_source(data, limits)
    with source:
        if png is not None:
            with decoding(fmt):
                png.check_pixel_stream(data)
            if png.can_pass_through() and source.size in ALLOWED_SIZES:
                return _passthrough(data, source.size, resize_mode)
        return _convert(source, fmt, resize_mode)


def _passthrough(data: bytes, size: tuple[int, int], resize_mode: ResizeMode) -> PreparedImage:
    width, height = size
    return PreparedImage(
        png=data,
        width=width,
        height=height,
        source_format="png",
        source_width=width,
        source_height=height,
        resize_mode=resize_mode,
        passthrough=True,
        operations=("passthrough",),
    )


def _convert(source: ImageFile.ImageFile, fmt: str, resize_mode: ResizeMode) -> PreparedImage:
    ops: list[str] = []
    icc = source.info.get("icc_profile")
    with decoding(fmt):
        orientation = exif_orientation(source)  # may decode a PNG whose eXIf chunk follows the pixels
    stored = source.size
    oriented = (stored[1], stored[0]) if orientation in SWAPS_AXES else stored
    plan = Plan(orientation, oriented, target_size(oriented, resize_mode), resize_mode)

    with decoding(fmt):
        drafted = fmt == "jpeg" and draft(source, plan, ops)
        source.load()  # the full decode, here, so truncation surfaces as UnsupportedImage
    picture = resizable(source, ops)
    picture = resize(picture, plan, ops, drafted=drafted)
    if picture is not source:
        source.close()  # its decoded pixels (a 12 MP JPEG's half-scale draft: 12 MB) are done with
    picture = to_srgb(picture, icc, ops)
    if orientation in TRANSPOSE:
        picture = picture.transpose(TRANSPOSE[orientation])
        ops.append(f"exif-transpose {orientation}")
    picture = pad(picture, plan.target)
    png = transient_png(picture, level=_TRANSIENT_PNG_LEVEL)
    ops.append("strip-metadata")
    return PreparedImage(
        png=png,
        width=picture.width,
        height=picture.height,
        source_format=fmt,
        source_width=stored[0],
        source_height=stored[1],
        resize_mode=resize_mode,
        passthrough=False,
        operations=tuple(ops),
    )
