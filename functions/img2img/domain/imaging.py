"""Image preparation: decode, guard, orient, convert and fit the source to a size SDXL takes,
and re-encode the model's result in the format the caller asked for.

Inputs are untrusted. The order of work is chosen so that cheap checks come first and nothing
is decoded until the byte cap, the format (judged by content, never by name), the frame count
and the declared pixel count have passed. Pixels are then decoded at the smallest size that
still serves the target (JPEG DCT scaling), resized, and only then colour-converted, rotated
and padded, so the expensive steps touch about one megapixel, not the source's twelve.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache

from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from img2img.domain.errors import FieldError, ImageTooLarge, InvalidRequest, ModelError, UnsupportedImage
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

ACCEPTED_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
MIME_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FILE_EXTENSIONS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}

# Beyond 24:1 a padded picture would be a band under 64 px in a 1536 px frame (under 8 rows of
# SDXL's 1/8-scale latent: nothing left to transform) and a fitted one would keep under a tenth
# of the source. Such strips are refused rather than turned into a blur or a sliver.
MAX_ASPECT_RATIO = 24.0

# Pad colour: mid grey is neutral in hue and value, so the model reads the bars as neither sky
# nor a black frame, and img2img can paint over them evenly.
PAD_COLOUR = (128, 128, 128)
# Transparent pixels are laid on white: their stored colour is arbitrary (often black), and
# cut-outs, logos and line art are drawn to sit on a light page.
ALPHA_BACKGROUND = (255, 255, 255)

# The prepared PNG is a transient payload (decoded once by the model, never stored for users):
# on a photo-like 1152x896 picture zlib level 1 encodes in ~65 ms against ~380 ms at Pillow's
# default 6, for ~16 % more bytes.
_TRANSIENT_PNG_LEVEL = 1
_JPEG_QUALITY = 90
_WEBP_QUALITY = 90

_FIELD = "init_image"
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_DISPLAY_NAMES = "PNG, JPEG or WebP"

# EXIF orientation -> the transpose that turns stored pixels into displayed ones (the table
# ImageOps.exif_transpose uses; applied here after the downscale, on far fewer pixels).
_ORIENTATION_TAG = 0x0112
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})

# What Pillow raises on malformed input, across plugins and the zlib/libjpeg/libwebp decoders.
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
)

_RESULT_DECODE_ERRORS: tuple[type[Exception], ...] = (Image.DecompressionBombError, *_DECODE_ERRORS)

# PNG chunks that carry no metadata worth stripping and do not change how Pillow decodes the
# pixels: a clean 8-bit RGB PNG with only these may be sent as it is.
_PASSTHROUGH_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"cHRM", b"pHYs", b"sBIT"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageLimits:
    """Caps on the source. Peak memory of prepare_image is about 35 MB plus, per source pixel:
    JPEG well under 1 byte (decoded at 1/2..1/8 scale), PNG about 5 bytes, WebP about 16 bytes
    (libwebp's canvas plus Pillow's copies; no reduced-size decode), hence WebP's own cap."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_webp_pixels: int = 25_000_000

    def pixel_cap(self, fmt: str) -> int:
        return min(self.max_pixels, self.max_webp_pixels) if fmt == "webp" else self.max_pixels


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


# ---------------------------------------------------------------------------------------------
# Format detection


def detect_format(data: bytes) -> str | None:
    """The image format `data` holds, judged by its leading bytes (never by a file name):
    "png", "jpeg", "webp", "gif", "tiff", "bmp", "ico", "heic", "avif", "svg", "pdf", "psd",
    "jpeg2000", "jxl", "qoi", "iso-media"; None when it is none of these."""
    head = data[:64]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], "iso-media")
    if _looks_like_svg(data[:4096]):
        return "svg"
    return None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (_PNG_SIGNATURE, "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"8BPS", "psd"),
    (b"%PDF-", "pdf"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\xff\x0a", "jxl"),
    (b"qoif", "qoi"),
)
_ISO_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"), "heic"),
    b"avif": "avif",
    b"avis": "avif",
}


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<") and b"<svg" in text


# ---------------------------------------------------------------------------------------------
# prepare_image


def prepare_image(data: bytes, resize_mode: ResizeMode, limits: ImageLimits) -> PreparedImage:
    """Turn the caller's source image into a PNG of an SDXL size.

    Raises UnsupportedImage (not a still PNG/JPEG/WebP, or corrupt), ImageTooLarge (byte or
    pixel cap, checked before decoding) or InvalidRequest (resize_mode "reject" and the size is
    not allowed; an aspect ratio beyond MAX_ASPECT_RATIO)."""
    _require_strict_decoding()
    fmt = _check_container(data, limits)
    with _decoding(fmt):
        png = _PngLayout.read(data) if fmt == "png" else None
    _check_pixels(_declared_size(data, fmt), limits.pixel_cap(fmt))
    with _decoding(fmt):
        source = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]])
    with source:
        _check_pixels(source.size, limits.pixel_cap(fmt))  # JPEG: Image.open read only the header
        _check_still(source, fmt)
        if png is not None:
            with _decoding(fmt):
                png.check_pixel_stream(data)
            if png.can_pass_through() and source.size in ALLOWED_SIZES:
                return _passthrough(data, source.size, resize_mode)
        return _convert(source, fmt, resize_mode)


def _require_strict_decoding() -> None:
    # With this flag set Pillow pads a cut-off file with grey and calls it a picture.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False: truncated inputs would pass")


def _check_container(data: bytes, limits: ImageLimits) -> str:
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"init_image is {len(data)} bytes; the limit is {limits.max_bytes} bytes",
            [FieldError(_FIELD, f"at most {limits.max_bytes} bytes")],
        )
    fmt = detect_format(data)
    if fmt not in ACCEPTED_FORMATS:
        if not data:
            detected = "it is empty"
        elif fmt is None:
            detected = "it is not a recognised image format"
        else:
            detected = f"detected {fmt.upper()}"
        raise UnsupportedImage(
            f"init_image must be a still {_DISPLAY_NAMES} image; {detected}",
            [FieldError(_FIELD, f"accepted formats: {_DISPLAY_NAMES}; {detected}")],
        )
    return fmt


@contextmanager
def _decoding(fmt: str) -> Iterator[None]:
    """Map what a decoder raises on hostile or broken input to domain errors."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (2x MAX_IMAGE_PIXELS, or the warning if run with -W error) backs
        # ours up when a caller configures max_pixels above Pillow's.
        raise ImageTooLarge(
            "init_image declares too many pixels to decode safely",
            [FieldError(_FIELD, f"too many pixels: {exc}")],
        ) from exc
    except _DECODE_ERRORS as exc:
        reason = "its header cannot be read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise UnsupportedImage(
            f"init_image could not be decoded: the image is truncated or corrupt ({fmt.upper()})",
            [FieldError(_FIELD, f"the image is truncated or corrupt: {reason}")],
        ) from exc


def _declared_size(data: bytes, fmt: str) -> tuple[int, int]:
    """Width and height as the header declares them, read without Pillow: opening a WebP makes
    libwebp allocate the whole canvas, so the cap must be checked first. (0, 0) when the header
    is not there to read (JPEG: Pillow reads its header without allocating; broken files fail
    later as corrupt)."""
    if fmt == "png" and data[12:16] == b"IHDR":
        width, height = struct.unpack_from(">II", data, 16)
        return width, height
    if fmt == "webp" and len(data) >= 30:
        return _webp_declared_size(data)
    return (0, 0)


def _webp_declared_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended format: 24-bit canvas width-1 and height-1
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14-bit width-1 and height-1
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return (0, 0)


def _check_pixels(size: tuple[int, int], cap: int) -> None:
    width, height = size
    if width * height > cap:
        raise ImageTooLarge(
            f"init_image is {width}x{height} = {width * height} pixels; the limit is {cap}",
            [FieldError(_FIELD, f"at most {cap} pixels")],
        )


def _check_still(source: Image.Image, fmt: str) -> None:
    # A multi-picture JPEG (MPO, written by many phones) is a still photo plus extras: the
    # first picture is the photo. Animated PNG and WebP have no single picture to send.
    frames = getattr(source, "n_frames", 1)
    if fmt != "jpeg" and frames > 1:
        raise UnsupportedImage(
            f"init_image must be a still {_DISPLAY_NAMES} image; it is animated ({frames} frames)",
            [FieldError(_FIELD, f"animated {fmt.upper()} ({frames} frames); send a single frame")],
        )


# ---------------------------------------------------------------------------------------------
# PNG structure: every PNG is checked chunk by chunk and its pixel stream inflated once, because
# Pillow skips IDAT checksums and quietly leaves rows blank when the zlib stream ends early.

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
_INFLATE_STEP = 8 * 1024 * 1024  # bytes of pixel stream inflated at a time: bounded memory


@dataclass(frozen=True)
class _PngLayout:
    chunks: tuple[bytes, ...]  # types in order; b"" stands for bytes after IEND
    idat: tuple[tuple[int, int], ...]  # (offset, length) of each IDAT payload
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlace: int

    @classmethod
    def read(cls, data: bytes) -> _PngLayout:
        """Walk the chunks up to IEND, checking each CRC."""
        view = memoryview(data)
        pos, chunks, idat = len(_PNG_SIGNATURE), [], []
        while pos < len(data):
            if pos + 12 > len(data):
                raise SyntaxError("PNG chunk header cut off")
            length, kind = struct.unpack_from(">I4s", data, pos)
            end = pos + 8 + length
            if end + 4 > len(data):
                raise SyntaxError(f"PNG chunk {kind!r} cut off")
            if zlib.crc32(view[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
                raise SyntaxError(f"PNG chunk {kind!r} fails its checksum")
            chunks.append(kind)
            if kind == b"IDAT":
                idat.append((pos + 8, length))
            pos = end + 4
            if kind == b"IEND":
                if pos < len(data):
                    chunks.append(b"")
                break
        if chunks[:1] != [b"IHDR"] or len(data) < 33:
            raise SyntaxError("PNG does not start with IHDR")
        width, height, bit_depth, colour_type, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
        if colour_type not in _CHANNELS:
            raise SyntaxError(f"PNG colour type {colour_type} does not exist")
        return cls(tuple(chunks), tuple(idat), width, height, bit_depth, colour_type, interlace)

    def stream_length(self) -> int:
        """Bytes the inflated pixel stream must hold: per row, a filter byte and the samples."""
        bits = _CHANNELS[self.colour_type] * self.bit_depth

        def rows(width: int, height: int) -> int:
            return height * (1 + (width * bits + 7) // 8) if width and height else 0

        if not self.interlace:
            return rows(self.width, self.height)
        return sum(
            rows(max(0, -(-(self.width - x) // dx)), max(0, -(-(self.height - y) // dy)))
            for x, y, dx, dy in _ADAM7
        )

    def check_pixel_stream(self, data: bytes) -> None:
        """Inflate the IDAT stream (without keeping it): it must end, hold exactly the rows the
        header declares and, for plain PNGs, name a known filter on every row. Nothing can then
        fail in unfiltering: this is a full decode for pass-through purposes."""
        expected = self.stream_length()
        stride = 0 if self.interlace else expected // self.height if self.height else 0
        inflater, produced, view = zlib.decompressobj(), 0, memoryview(data)
        for offset, length in self.idat:
            pending: bytes | memoryview = view[offset : offset + length]
            while pending and not inflater.eof:
                piece = inflater.decompress(pending, _INFLATE_STEP)
                pending = inflater.unconsumed_tail
                if stride and max(piece[(-produced) % stride :: stride], default=0) > 4:
                    raise SyntaxError("PNG row uses an unknown filter type")
                produced += len(piece)
                if produced > expected:
                    raise SyntaxError("PNG pixel data is longer than its header declares")
        if not inflater.eof or produced != expected:
            raise SyntaxError(f"PNG pixel data is cut short ({produced} of {expected} bytes)")

    def can_pass_through(self) -> bool:
        """An 8-bit, non-interlaced RGB PNG with no metadata chunks and nothing after IEND."""
        return (
            (self.bit_depth, self.colour_type, self.interlace) == (8, 2, 0)
            and self.chunks[-1:] == (b"IEND",)
            and set(self.chunks) <= _PASSTHROUGH_CHUNKS
        )


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


# ---------------------------------------------------------------------------------------------
# Target size


def nearest_allowed_size(width: int, height: int) -> tuple[int, int]:
    """The SDXL size whose aspect ratio is nearest width:height (compared on a log scale, so
    2:1 and 1:2 are equally far from 1:1); ties go to the earlier entry of ALLOWED_SIZES."""
    ratio = math.log(width / height)
    return min(ALLOWED_SIZES, key=lambda size: abs(math.log(size[0] / size[1]) - ratio))


def _target_size(oriented: tuple[int, int], resize_mode: ResizeMode) -> tuple[int, int]:
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
                    _FIELD, f"aspect ratio {aspect:.0f}:1 exceeds {MAX_ASPECT_RATIO:.0f}:1; crop it first"
                )
            ],
        )
    return nearest_allowed_size(width, height)


def _not_allowed_size(width: int, height: int) -> InvalidRequest:
    allowed = ", ".join(f"{w}x{h}" for w, h in ALLOWED_SIZES)
    return InvalidRequest(
        f"init_image is {width}x{height}; with resize_mode 'reject' it must be an SDXL size: {allowed}",
        [
            FieldError(_FIELD, f"{width}x{height} is not an SDXL size; allowed: {allowed}"),
            FieldError("resize_mode", "'fit' (scale, centre-crop) or 'pad' (scale, pad) adapts the size"),
        ],
    )


# ---------------------------------------------------------------------------------------------
# The conversion path


@dataclass(frozen=True)
class _Plan:
    orientation: int  # EXIF orientation, 1..8
    oriented: tuple[int, int]  # source size as displayed
    target: tuple[int, int]  # output size, as displayed
    resize_mode: ResizeMode

    @property
    def stored_target(self) -> tuple[int, int]:
        """The target in the stored pixels' axes (resizing happens before the rotation)."""
        w, h = self.target
        return (h, w) if self.orientation in _SWAPS_AXES else (w, h)

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


def _convert(source: ImageFile.ImageFile, fmt: str, resize_mode: ResizeMode) -> PreparedImage:
    ops: list[str] = []
    icc = source.info.get("icc_profile")
    with _decoding(fmt):
        orientation = _orientation(source)  # may decode a PNG whose eXIf chunk follows the pixels
    stored = source.size
    oriented = (stored[1], stored[0]) if orientation in _SWAPS_AXES else stored
    plan = _Plan(orientation, oriented, _target_size(oriented, resize_mode), resize_mode)

    with _decoding(fmt):
        if fmt == "jpeg":
            _draft(source, plan, ops)
        source.load()  # the full decode, here, so truncation surfaces as UnsupportedImage
    picture = _resizable(source, ops)
    picture = _resize(picture, plan, ops)
    picture = _to_srgb(picture, icc, ops)
    if orientation in _TRANSPOSE:
        picture = picture.transpose(_TRANSPOSE[orientation])
        ops.append(f"exif-transpose {orientation}")
    picture = _pad(picture, plan.target)
    png = _encode(picture, "png", png_level=_TRANSIENT_PNG_LEVEL)
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


def _orientation(source: Image.Image) -> int:
    value = source.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _draft(source: ImageFile.ImageFile, plan: _Plan, ops: list[str]) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale while the result stays at least as big as
    the resize needs: a 12 MP photo then never exists at full size in memory."""
    before = source.size
    source.draft(None, plan.scaled_size(before))
    if source.size != before:
        ops.append(f"jpeg-draft {before[0]}x{before[1]}->{source.size[0]}x{source.size[1]}")


def _resizable(picture: Image.Image, ops: list[str]) -> Image.Image:
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


def _resize(picture: Image.Image, plan: _Plan, ops: list[str]) -> Image.Image:
    """Fit: scale to cover the target and centre-crop, in one resample whose box is the crop
    (no oversized intermediate). Pad: scale to sit inside; _pad adds the bars after rotation."""
    if label := plan.label():
        ops.append(label)
    if plan.resize_mode == "pad":
        size, box = plan.scaled_size(picture.size), None
    else:
        size, box = plan.stored_target, _centre_box(picture.size, plan.stored_target)
    if size == picture.size and box in (None, (0, 0, *picture.size)):
        return picture
    return picture.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


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


def _pad(picture: Image.Image, target: tuple[int, int]) -> Image.Image:
    if picture.size == target:
        return picture
    canvas = Image.new("RGB", target, PAD_COLOUR)
    canvas.paste(picture, ((target[0] - picture.width) // 2, (target[1] - picture.height) // 2))
    return canvas


# ---------------------------------------------------------------------------------------------
# Colour


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(picture: Image.Image, icc: bytes | None, ops: list[str]) -> Image.Image:
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


# ---------------------------------------------------------------------------------------------
# Output


def _encode(picture: Image.Image, output_format: str, *, png_level: int = 6) -> bytes:
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
        raise ModelError(f"the model returned {what}, not {_DISPLAY_NAMES}")
    try:
        with Image.open(io.BytesIO(image_bytes), formats=[_PIL_FORMATS[fmt]]) as result:
            result.load()
            if fmt == output_format:
                return image_bytes
            # The delivered file is stored and downloaded: Pillow's default PNG level (6).
            return _encode(_for_output(result, output_format), output_format)
    except _RESULT_DECODE_ERRORS as exc:
        raise ModelError(f"the model returned a {fmt.upper()} image that cannot be decoded: {exc}") from exc


def _for_output(picture: Image.Image, output_format: OutputFormat) -> Image.Image:
    """JPEG has no alpha: lay it on white. PNG and WebP keep it."""
    picture = _resizable(picture, [])
    if output_format != "jpeg" and picture.mode in ("RGBA", "LA"):
        return picture.convert("RGBA")
    return _to_srgb(picture, picture.info.get("icc_profile"), [])
