"""Guards on the untrusted source, cheapest first: the byte cap, the format, the pixel count as
the header declares it (read without Pillow), the JPEG's decode work, the frame count, the
smallest side; and the mapping of whatever a decoder raises on hostile or broken input to
domain errors. `open_source` runs them all without decoding a pixel: both doors refuse with it
before anything is stored, queued or billed (domain/admission.py), and prepare_image starts
with it."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from img2img.domain.errors import FieldError, ImageTooLarge, InvalidRequest, UnsupportedImage
from img2img.domain.imaging.formats import ACCEPTED_FORMATS, DISPLAY_NAMES, PIL_FORMATS, detect_format
from img2img.domain.imaging.png_verifier import PngLayout

FIELD = "init_image"  # the request field that errors about the source point at
# The smallest side a source may have: Stability documents "Minimum 64 pixels per side" for its
# image-to-image input (tests/fixtures/bedrock/sd3-5-large.json cites the page). Fitting a
# smaller one up to an SDXL size would bill a call on next to nothing.
MIN_SIDE = 64

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
    # A JPEG's decode work: libjpeg entropy-decodes every scan over the whole picture (DCT
    # scaling saves only the inverse transform), so the work is scans x pixels. A progressive
    # encoder writes about 10 scans (libjpeg's simple progression; mozjpeg a few more); a file
    # of a thousand near-empty scans (~1 MB at 7000x7000) takes minutes of Lambda CPU. The cap
    # is 16 scans at the pixel cap; libjpeg-turbo's djpeg offers -maxscans for the same attack.
    max_scan_pixels: int = 16 * 50_000_000

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


# Where an entropy-coded segment ends: a 0xFF not followed by a stuffed 0x00, a restart marker
# (0xD0-0xD7) or fill (0xFF).
_SEGMENT_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS segments) the first picture of a JPEG has, walking its markers and
    skipping each scan's entropy-coded data without decoding it. Stops at EOI, so an MPO's
    further pictures and EXIF thumbnails (inside APP segments) are not counted."""
    pos, scans = 2, 0
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # SOS: the entropy-coded data follows its header
            scans += 1
            found = _SEGMENT_END.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return scans


def check_decode_work(data: bytes, fmt: str, size: tuple[int, int], limits: ImageLimits) -> None:
    if fmt != "jpeg":
        return  # PNG and WebP decode in one pass over their pixels, which check_pixels caps
    scans, pixels = jpeg_scans(data), size[0] * size[1]
    if scans * pixels > limits.max_scan_pixels:
        raise ImageTooLarge(
            f"init_image takes too much work to decode: {scans} scans of {size[0]}x{size[1]} pixels",
            [FieldError(FIELD, f"at most {limits.max_scan_pixels // max(pixels, 1)} scans at this size")],
        )


def check_min_side(size: tuple[int, int]) -> None:
    if min(size) < MIN_SIDE:
        raise InvalidRequest(
            f"init_image is {size[0]}x{size[1]}; each side must be at least {MIN_SIDE} pixels",
            [FieldError(FIELD, f"each side at least {MIN_SIDE} pixels")],
        )


def open_source(data: bytes, limits: ImageLimits) -> tuple[str, PngLayout | None, ImageFile.ImageFile]:
    """The source checked without decoding a pixel, and opened: (format, its PNG layout, the
    open image; the caller closes it). Raises UnsupportedImage, ImageTooLarge or
    InvalidRequest (a side under MIN_SIDE)."""
    require_strict_decoding()
    fmt = check_container(data, limits)
    with decoding(fmt):
        png = PngLayout.read(data) if fmt == "png" else None
    check_pixels(declared_size(data, fmt), limits.pixel_cap(fmt))
    with decoding(fmt):
        source = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]])
    try:
        check_pixels(source.size, limits.pixel_cap(fmt))  # JPEG: Image.open read only the header
        check_decode_work(data, fmt, source.size, limits)
        check_still(source, fmt)
        check_min_side(source.size)
    except BaseException:
        source.close()
        raise
    return fmt, png, source


def check_still(source: Image.Image, fmt: str) -> None:
    # A multi-picture JPEG (MPO, written by many phones) is a still photo plus extras: the
    # first picture is the photo. Animated PNG and WebP have no single picture to send.
    frames = getattr(source, "n_frames", 1)
    if fmt != "jpeg" and frames > 1:
        raise UnsupportedImage(
            f"init_image must be a still {DISPLAY_NAMES} image; it is animated ({frames} frames)",
            [FieldError(FIELD, f"animated {fmt.upper()} ({frames} frames); send a single frame")],
        )
