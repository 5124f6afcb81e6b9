"""Guards on the untrusted source, cheapest first: the byte cap, the format, the pixel count as
the header declares it (read without Pillow), the frame count; and the mapping of whatever a
decoder raises on hostile or broken input to domain errors."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from img2img.domain.errors import FieldError, ImageTooLarge, UnsupportedImage
from img2img.domain.imaging.formats import ACCEPTED_FORMATS, DISPLAY_NAMES, detect_format

FIELD = "init_image"  # the request field that errors about the source point at

# What Pillow raises on malformed input, across plugins and the zlib/libjpeg/libwebp decoders.
DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
)


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


def require_strict_decoding() -> None:
    # With this flag set Pillow pads a cut-off file with grey and calls it a picture.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False: truncated inputs would pass")


def check_container(data: bytes, limits: ImageLimits) -> str:
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"init_image is {len(data)} bytes; the limit is {limits.max_bytes} bytes",
            [FieldError(FIELD, f"at most {limits.max_bytes} bytes")],
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
            f"init_image must be a still {DISPLAY_NAMES} image; {detected}",
            [FieldError(FIELD, f"accepted formats: {DISPLAY_NAMES}; {detected}")],
        )
    return fmt


@contextmanager
def decoding(fmt: str) -> Iterator[None]:
    """Map what a decoder raises on hostile or broken input to domain errors."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (2x MAX_IMAGE_PIXELS, or the warning if run with -W error) backs
        # ours up when a caller configures max_pixels above Pillow's.
        raise ImageTooLarge(
            "init_image declares too many pixels to decode safely",
            [FieldError(FIELD, f"too many pixels: {exc}")],
        ) from exc
    except DECODE_ERRORS as exc:
        reason = "its header cannot be read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise UnsupportedImage(
            f"init_image could not be decoded: the image is truncated or corrupt ({fmt.upper()})",
            [FieldError(FIELD, f"the image is truncated or corrupt: {reason}")],
        ) from exc


def declared_size(data: bytes, fmt: str) -> tuple[int, int]:
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


def check_pixels(size: tuple[int, int], cap: int) -> None:
    width, height = size
    if width * height > cap:
        raise ImageTooLarge(
            f"init_image is {width}x{height} = {width * height} pixels; the limit is {cap}",
            [FieldError(FIELD, f"at most {cap} pixels")],
        )


def check_still(source: Image.Image, fmt: str) -> None:
    # A multi-picture JPEG (MPO, written by many phones) is a still photo plus extras: the
    # first picture is the photo. Animated PNG and WebP have no single picture to send.
    frames = getattr(source, "n_frames", 1)
    if fmt != "jpeg" and frames > 1:
        raise UnsupportedImage(
            f"init_image must be a still {DISPLAY_NAMES} image; it is animated ({frames} frames)",
            [FieldError(FIELD, f"animated {fmt.upper()} ({frames} frames); send a single frame")],
        )
