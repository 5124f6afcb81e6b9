"""Encoding: pictures saved as PNG, JPEG or WebP with every piece of metadata stripped, and the
model's result re-encoded in the format the caller asked for."""

from __future__ import annotations

import io

from PIL import Image

from img2img.domain.errors import ModelError
from img2img.domain.imaging.colour import resizable, to_srgb
from img2img.domain.imaging.formats import ACCEPTED_FORMATS, DISPLAY_NAMES, PIL_FORMATS, detect_format
from img2img.domain.imaging.guards import DECODE_ERRORS
from img2img.domain.request import OutputFormat

_JPEG_QUALITY = 90
_WEBP_QUALITY = 90

_RESULT_DECODE_ERRORS: tuple[type[Exception], ...] = (Image.DecompressionBombError, *DECODE_ERRORS)


def encode(picture: Image.Image, output_format: str, *, png_level: int = 6) -> bytes:
    picture.info = {}  # Pillow re-emits info (ICC, transparency, EXIF) on save: strip it all
    buffer = io.BytesIO()
    if output_format == "png":
        picture.save(buffer, "PNG", compress_level=png_level)
    elif output_format == "jpeg":
        picture.save(buffer, "JPEG", quality=_JPEG_QUALITY)
    else:
        picture.save(buffer, "WEBP", quality=_WEBP_QUALITY)
    return buffer.getvalue()


def encode_result(image_bytes: bytes, output_format: OutputFormat) -> bytes:
    """Re-encode the model's result (PNG or JPEG) in the requested format, metadata stripped.
    A result already in the requested format passes through untouched once it decodes.
    Raises ModelError when the model's bytes are not a decodable PNG, JPEG or WebP."""
    fmt = detect_format(image_bytes)
    if fmt not in ACCEPTED_FORMATS:
        what = f"a {fmt.upper()} image" if fmt else "bytes that are not an image"
        raise ModelError(f"the model returned {what}, not {DISPLAY_NAMES}")
    try:
        with Image.open(io.BytesIO(image_bytes), formats=[PIL_FORMATS[fmt]]) as result:
            result.load()
            if fmt == output_format:
                return image_bytes
            # The delivered file is stored and downloaded: Pillow's default PNG level (6).
            return encode(_for_output(result, output_format), output_format)
    except _RESULT_DECODE_ERRORS as exc:
        raise ModelError(f"the model returned a {fmt.upper()} image that cannot be decoded: {exc}") from exc


def _for_output(picture: Image.Image, output_format: OutputFormat) -> Image.Image:
    """JPEG has no alpha: lay it on white. PNG and WebP keep it."""
    picture = resizable(picture, [])
    if output_format != "jpeg" and picture.mode in ("RGBA", "LA"):
        return picture.convert("RGBA")
    return to_srgb(picture, picture.info.get("icc_profile"), [])
