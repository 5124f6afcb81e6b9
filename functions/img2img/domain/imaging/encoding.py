"""Encoding: pictures saved as PNG, JPEG or WebP with every piece of metadata stripped, and the
model's result re-encoded in the format the caller asked for (or, already in it, checked and
kept byte for byte)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from img2img.domain.errors import ModelError
from img2img.domain.imaging.colour import resizable, to_srgb
from img2img.domain.imaging.formats import (
    ACCEPTED_FORMATS,
    DISPLAY_NAMES,
    PIL_FORMATS,
    PNG_SIGNATURE,
    detect_format,
)
from img2img.domain.imaging.guards import DECODE_ERRORS
from img2img.domain.imaging.png_verifier import PngLayout
from img2img.domain.request import OutputFormat

_JPEG_QUALITY = 90
_WEBP_QUALITY = 90

_RESULT_DECODE_ERRORS: tuple[type[Exception], ...] = (Image.DecompressionBombError, *DECODE_ERRORS)
# The most pixels a result may declare: where Pillow's own decompression-bomb error starts,
# which is what refused larger results when every result was decoded.
RESULT_MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


def encode(picture: Image.Image, output_format: str) -> bytes:
    picture.info = {}  # Pillow re-emits info (ICC, transparency, EXIF) on save: strip it all
    buffer = io.BytesIO()
    if output_format == "png":
        picture.save(buffer, "PNG")  # Pillow's default level 6: results are stored and downloaded
    elif output_format == "jpeg":
        picture.save(buffer, "JPEG", quality=_JPEG_QUALITY)
    else:
        picture.save(buffer, "WEBP", quality=_WEBP_QUALITY)
    return buffer.getvalue()


def transient_png(picture: Image.Image, *, level: int) -> bytes:
    """An 8-bit RGB picture as a PNG for the model alone (never stored for users): IHDR, one
    IDAT, IEND and nothing else, every row unfiltered, deflated at zlib `level` (0 stores it
    as it is). Pillow's encoder tries all five PNG filters on every row, which at low levels
    costs more than the compression itself; photos' sensor noise leaves filters little to gain
    there anyway. The rows are deflated one by one and the file joined once: a PNG-sized
    buffer less than joining the rows first, and the pixels are dropped before the join (each
    megabyte of fresh memory is page faults, and the job's peak RSS is reached here)."""
    if picture.mode != "RGB":
        raise ValueError(f"transient_png takes RGB pictures, not {picture.mode}")
    width, height = picture.size
    pixels, stride = memoryview(picture.tobytes()), width * 3
    deflate = zlib.compressobj(level)
    stream = [
        deflate.compress(b"\x00" + pixels[top : top + stride]) for top in range(0, height * stride, stride)
    ]
    stream.append(deflate.flush())
    del pixels
    crc = zlib.crc32(b"IDAT")
    for piece in stream:
        crc = zlib.crc32(piece, crc)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, not interlaced
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            struct.pack(">I", sum(map(len, stream))),
            b"IDAT",
            *stream,
            struct.pack(">I", crc),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(payload)), kind, payload, struct.pack(">I", crc)))


def encode_result(image_bytes: bytes, output_format: OutputFormat) -> bytes:
    """Re-encode the model's result (PNG or JPEG) in the requested format, metadata stripped.
    A result already in the requested format passes through untouched once it decodes (a PNG
    once its structure checks out, without decoding its pixels: see check_png_result).
    Raises ModelError when the model's bytes are not a decodable PNG, JPEG or WebP."""
    fmt = detect_format(image_bytes)
    if fmt not in ACCEPTED_FORMATS:
        what = f"a {fmt.upper()} image" if fmt else "bytes that are not an image"
        raise ModelError(f"the model returned {what}, not {DISPLAY_NAMES}")
    if fmt == output_format == "png":
        check_png_result(image_bytes)
        return image_bytes
    try:
        with Image.open(io.BytesIO(image_bytes), formats=[PIL_FORMATS[fmt]]) as result:
            result.load()
            if fmt == output_format:
                return image_bytes
            return encode(_for_output(result, output_format), output_format)
    except _RESULT_DECODE_ERRORS as exc:
        raise ModelError(f"the model returned a {fmt.upper()} image that cannot be decoded: {exc}") from exc


_PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def check_png_result(data: bytes) -> None:
    """A PNG result kept as the model sent it, checked the way the source's guards check a PNG
    before decoding, and as cheaply: every chunk whole and matching its CRC (what a cut-off or
    damaged answer breaks), a header with a size and a pixel format PNG defines, pixel data, an
    end, and no more pixels than Pillow would decode. Its pixels are not decoded (that cost a
    full decode per job, ~15 ms for 1024x1024): the CRCs cover every byte of the pixel stream
    as the model's encoder wrote it, so what this cannot catch is a stream that encoder wrote
    wrong in the first place. Raises ModelError."""
    try:
        layout = PngLayout.read(data)
    except DECODE_ERRORS as exc:
        raise ModelError(f"the model returned a PNG image that cannot be decoded: {exc}") from exc
    width, height = layout.width, layout.height
    problem = None
    if b"IEND" not in layout.chunks:
        problem = "it is cut short (no IEND chunk)"
    elif not layout.idat:
        problem = "it has no pixel data (no IDAT chunk)"
    elif layout.bit_depth not in _PNG_BIT_DEPTHS[layout.colour_type] or layout.interlace not in (0, 1):
        problem = f"its header is invalid (bit depth {layout.bit_depth}, colour type {layout.colour_type})"
    elif not width or not height or width * height > RESULT_MAX_PIXELS:
        problem = f"it declares {width}x{height} pixels"
    if problem:
        raise ModelError(f"the model returned a PNG image that cannot be decoded: {problem}")


def _for_output(picture: Image.Image, output_format: OutputFormat) -> Image.Image:
    """JPEG has no alpha: lay it on white. PNG and WebP keep it."""
    picture = resizable(picture, [])
    if output_format != "jpeg" and picture.mode in ("RGBA", "LA"):
        return picture.convert("RGBA")
    return to_srgb(picture, picture.info.get("icc_profile"), [])
