"""Colour: any decoded mode (16-bit, 1-bit, palette, CMYK, alpha) brought to 8 bits a sample for
resampling, then to 8-bit RGB in sRGB: alpha laid on white, an embedded ICC profile applied."""

from __future__ import annotations

import io
from functools import cache

from PIL import Image, ImageCms

# Transparent pixels are laid on white: their stored colour is arbitrary (often black), and
# cut-outs, logos and line art are drawn to sit on a light page.
ALPHA_BACKGROUND = (255, 255, 255)


def resizable(picture: Image.Image, ops: list[str]) -> Image.Image:
    """Bring any decoded mode to one of RGB, RGBA, L, LA or CMYK: 8 bits a sample, which
    Pillow resamples correctly (it premultiplies alpha)."""
    mode = picture.mode
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return picture
    if mode.startswith("I"):  # 16-bit grey ('I;16', 'I;16B', ...) or 32-bit 'I'
        converted = _sixteen_to_eight(picture)
    elif mode == "1":
        converted = picture.convert("L")
    else:
        has_alpha = "transparency" in picture.info or mode in ("PA", "RGBa", "La")
        converted = picture.convert("RGBA" if has_alpha else "RGB")
    ops.append(f"convert-{mode}-{converted.mode}")
    return converted


def _sixteen_to_eight(picture: Image.Image) -> Image.Image:
    # Pillow's I;16 -> L conversion clips everything above 255 to white: scale, rounding.
    return picture.convert("I").point(lambda v: v / 257 + 0.5).convert("L")


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(picture: Image.Image, icc: bytes | None, ops: list[str]) -> Image.Image:
    """8-bit RGB in sRGB: alpha laid on white, an embedded colour profile applied (Display P3
    phone photos, CMYK print files) and then dropped, grey widened to three channels."""
    if picture.mode in ("RGBA", "LA"):
        picture = _flatten_alpha(picture, ops)
    if icc and not _is_srgb(icc):
        managed = _apply_profile(picture, icc)
        if managed is not None:
            ops.append(f"icc-{picture.mode}-to-srgb")
            return managed
        ops.append("icc-ignored")  # unreadable, or for another colour space than the pixels
    if picture.mode != "RGB":
        ops.append(f"convert-{picture.mode}-RGB")
        picture = picture.convert("RGB")
    return picture


def _flatten_alpha(picture: Image.Image, ops: list[str]) -> Image.Image:
    rgba = picture.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema() == (255, 255):  # fully opaque: nothing to composite
        return rgba.convert("RGB")
    background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
    background.paste(rgba, mask=alpha)
    ops.append("alpha-over-white")
    return background


def _is_srgb(icc: bytes) -> bool:
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    return "srgb" in description.lower()


def _apply_profile(picture: Image.Image, icc: bytes) -> Image.Image | None:
    try:
        source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(picture, source_profile, _srgb(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # unreadable, or a profile for another colour space than the pixels'
