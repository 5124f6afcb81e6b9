"""Geometry: the sizes SDXL takes, the EXIF orientation, and fitting the source to a target size
(fit: scale and centre-crop; pad: scale and add bars; reject: the size must already be one)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageFile

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.domain.imaging.guards import FIELD
from img2img.domain.request import ResizeMode

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

# Beyond 24:1 a padded picture would be a band under 64 px in a 1536 px frame (under 8 rows of
# SDXL's 1/8-scale latent: nothing left to transform) and a fitted one would keep under a tenth
# of the source. Such strips are refused rather than turned into a blur or a sliver.
MAX_ASPECT_RATIO = 24.0

# Pad colour: mid grey is neutral in hue and value, so the model reads the bars as neither sky
# nor a black frame, and img2img can paint over them evenly.
PAD_COLOUR = (128, 128, 128)

# EXIF orientation -> the transpose that turns stored pixels into displayed ones (the table
# ImageOps.exif_transpose uses; prepare_image applies it after the downscale, on far fewer pixels).
_ORIENTATION_TAG = 0x0112
TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = frozenset({5, 6, 7, 8})


def exif_orientation(source: Image.Image) -> int:
    value = source.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# ---------------------------------------------------------------------------------------------
# Target size


def nearest_allowed_size(width: int, height: int) -> tuple[int, int]:
    """The SDXL size whose aspect ratio is nearest width:height (compared on a log scale, so
    2:1 and 1:2 are equally far from 1:1); ties go to the earlier entry of ALLOWED_SIZES."""
    ratio = math.log(width / height)
    return min(ALLOWED_SIZES, key=lambda size: abs(math.log(size[0] / size[1]) - ratio))


def target_size(oriented: tuple[int, int], resize_mode: ResizeMode) -> tuple[int, int]:
    width, height = oriented
    if resize_mode == "reject":
        if oriented not in ALLOWED_SIZES:
            raise _not_allowed_size(width, height)
        return oriented
    aspect = max(width / height, height / width)
    if aspect > MAX_ASPECT_RATIO:
        raise InvalidRequest(
            f"init_image is {width}x{height}, an aspect ratio of {aspect:.0f}:1; at most "
            f"{MAX_ASPECT_RATIO:.0f}:1 can be fitted to an SDXL size (the widest is 1536x640, 2.4:1)",
            [
                FieldError(
                    FIELD, f"aspect ratio {aspect:.0f}:1 exceeds {MAX_ASPECT_RATIO:.0f}:1; crop it first"
                )
            ],
        )
    return nearest_allowed_size(width, height)


def _not_allowed_size(width: int, height: int) -> InvalidRequest:
    allowed = ", ".join(f"{w}x{h}" for w, h in ALLOWED_SIZES)
    return InvalidRequest(
        f"init_image is {width}x{height}; with resize_mode 'reject' it must be an SDXL size: {allowed}",
        [
            FieldError(FIELD, f"{width}x{height} is not an SDXL size; allowed: {allowed}"),
            FieldError("resize_mode", "'fit' (scale, centre-crop) or 'pad' (scale, pad) adapts the size"),
        ],
    )


# ---------------------------------------------------------------------------------------------
# Fitting the pixels to the target


@dataclass(frozen=True)
class Plan:
    orientation: int  # EXIF orientation, 1..8
    oriented: tuple[int, int]  # source size as displayed
    target: tuple[int, int]  # output size, as displayed
    resize_mode: ResizeMode

    @property
    def stored_target(self) -> tuple[int, int]:
        """The target in the stored pixels' axes (resizing happens before the rotation)."""
        w, h = self.target
        return (h, w) if self.orientation in SWAPS_AXES else (w, h)

    def scaled_size(self, stored: tuple[int, int]) -> tuple[int, int]:
        """The whole source scaled (stored axes): to cover the target for fit (then cropped),
        to sit inside it for pad (then padded)."""
        tw, th = self.stored_target
        sw, sh = stored
        if self.resize_mode == "pad":
            scale = min(tw / sw, th / sh)
            return min(tw, max(1, round(sw * scale))), min(th, max(1, round(sh * scale)))
        scale = max(tw / sw, th / sh)
        return max(tw, math.ceil(sw * scale)), max(th, math.ceil(sh * scale))

    def label(self) -> str | None:
        """What the geometry step does, in displayed axes, for PreparedImage.operations."""
        (w, h), (tw, th) = self.oriented, self.target
        if (w, h) == (tw, th):
            return None
        if w * th == tw * h:
            return f"resize {w}x{h}->{tw}x{th}"
        return f"{'pad' if self.resize_mode == 'pad' else 'fit-crop'} {w}x{h}->{tw}x{th}"


def draft(source: ImageFile.ImageFile, plan: Plan, ops: list[str]) -> bool:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale while the result stays at least as big as
    the resize needs: a 12 MP photo then never exists at full size in memory. True if it did."""
    before = source.size
    source.draft(None, plan.scaled_size(before))
    if source.size == before:
        return False
    ops.append(f"jpeg-draft {before[0]}x{before[1]}->{source.size[0]}x{source.size[1]}")
    return True


def resize(picture: Image.Image, plan: Plan, ops: list[str], *, drafted: bool = False) -> Image.Image:
    """Fit: scale to cover the target and centre-crop, in one resample whose box is the crop
    (no oversized intermediate). Pad: scale to sit inside; pad() adds the bars after rotation.
    After a JPEG draft (`drafted`) the step left is usually under 2x (up to about 3x for an
    extreme strip drafted to 1/8) and libjpeg's scaled IDCT has already low-passed the pixels:
    there bicubic is as close to a Lanczos from the full-size decode as Lanczos is (within 1 dB
    PSNR on the bench's noise and a synthetic scene; 43-54 dB from each other) and saves ~13 ms
    of ~45 for a 12 MP photo. The draft is then closed between Pillow's two passes (the same
    pixels as one call): the peak of a 12 MP JPEG's job holds the 12 MB draft and the 7 MB
    row-resampled picture, not them and the result too."""
    if label := plan.label():
        ops.append(label)
    if plan.resize_mode == "pad":
        size, box = plan.scaled_size(picture.size), None
    else:
        size, box = plan.stored_target, _centre_box(picture.size, plan.stored_target)
    if size == picture.size and box in (None, (0, 0, *picture.size)):
        return picture
    if not drafted:
        return picture.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    left, top, right, bottom = box or (0, 0, *picture.size)
    rows = picture.resize(
        (size[0], picture.height), Image.Resampling.BICUBIC, box=(left, 0, right, picture.height)
    )
    picture.close()
    return rows.resize(size, Image.Resampling.BICUBIC, box=(0, top, size[0], bottom))


def _centre_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[float, float, float, float]:
    """The largest centred region of `size` with the aspect ratio of `target`."""
    sw, sh = size
    tw, th = target
    if sw * th > tw * sh:  # source wider than the target: trim the sides
        keep = sh * tw / th
        return ((sw - keep) / 2, 0, (sw + keep) / 2, sh)
    if sw * th < tw * sh:  # taller: trim top and bottom
        keep = sw * th / tw
        return (0, (sh - keep) / 2, sw, (sh + keep) / 2)
    return (0, 0, sw, sh)


def pad(picture: Image.Image, target: tuple[int, int]) -> Image.Image:
    if picture.size == target:
        return picture
    canvas = Image.new("RGB", target, PAD_COLOUR)
    canvas.paste(picture, ((target[0] - picture.width) // 2, (target[1] - picture.height) // 2))
    return canvas
