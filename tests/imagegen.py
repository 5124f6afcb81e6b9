"""In-memory image factory for tests: good inputs of any size and format, and a corpus of bad ones.

Everything is made with Pillow (plus zlib/struct for the few PNGs Pillow cannot write: 16-bit RGB,
bombs, bad CRCs), so tests need no fixture files. Functions return encoded bytes unless their
name says otherwise (`scene`, `quadrants` return Pillow images).

    from tests import imagegen
    body = imagegen.jpeg(4000, 3000)
    for name, data in imagegen.unsupported_corpus().items(): ...
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from PIL import Image, ImageCms

# Quadrant colours of `quadrants()`: as displayed, top-left red, top-right green, bottom-left
# blue, bottom-right yellow. Four distinct corners tell all 8 EXIF orientations apart.
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
QUADRANT_COLOURS = {"top_left": RED, "top_right": GREEN, "bottom_left": BLUE, "bottom_right": YELLOW}

# How a viewer turns the stored pixels into the displayed ones, per EXIF orientation (the table
# ImageOps.exif_transpose uses), and the inverse, used here to store a picture "sideways". Written
# out again on purpose, not imported from imaging/geometry.py: it is the tests' oracle, so a wrong
# entry there fails the orientation tests instead of agreeing with itself.
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    **ORIENTATION_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
EXIF_ORIENTATION_TAG = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# Pictures


@functools.lru_cache(maxsize=128)
def _scene_bands(width: int, height: int) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The picture's three bands, drawn once per size (the fractal is most of a test's image
    making); callers only read them."""
    red = Image.linear_gradient("L").rotate(90).resize((width, height))
    green = Image.linear_gradient("L").resize((width, height))
    blue = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 64)
    return red, green, blue


def scene(width: int, height: int, *, noise: int = 0, seed: int = 0) -> Image.Image:
    """A photo-like RGB picture: two gradients and a fractal, plus optional grain (`noise` is
    the grain's amplitude, 0..128). Noise makes PNGs realistically hard to compress."""
    picture = Image.merge("RGB", _scene_bands(width, height))
    if noise:
        grain = Image.frombytes("L", (width, height), random.Random(seed).randbytes(width * height))
        picture = Image.blend(picture, Image.merge("RGB", (grain, grain, grain)), noise / 255)
    return picture


def quadrants(width: int, height: int) -> Image.Image:
    """Four solid quadrants in QUADRANT_COLOURS: survives crops, pads and resizes, and shows
    any rotation or flip."""
    picture = Image.new("RGB", (width, height), RED)
    half_w, half_h = max(1, width // 2), max(1, height // 2)
    picture.paste(GREEN, (half_w, 0, width, half_h))
    picture.paste(BLUE, (0, half_h, half_w, height))
    picture.paste(YELLOW, (half_w, half_h, width, height))
    return picture


def encode(picture: Image.Image, fmt: str, **params: Any) -> bytes:
    """Save `picture` as `fmt` ("PNG", "JPEG", "WEBP", "GIF", ...) with Pillow's `params`."""
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **params)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Accepted formats, any size and mode


def png(width: int = 64, height: int = 64, mode: str = "RGB", *, noise: int = 0, **params: Any) -> bytes:
    """Made once per arguments: the bytes cannot change, and tests ask for the same ones often."""
    try:
        return _png(width, height, mode, noise, tuple(sorted(params.items())))
    except TypeError:  # a parameter that cannot be a cache key
        return encode(scene(width, height, noise=noise).convert(mode), "PNG", **params)


@functools.lru_cache(maxsize=64)
def _png(width: int, height: int, mode: str, noise: int, params: tuple[tuple[str, Any], ...]) -> bytes:
    return encode(scene(width, height, noise=noise).convert(mode), "PNG", **dict(params))


def jpeg(width: int = 64, height: int = 64, mode: str = "RGB", *, quality: int = 90, **params: Any) -> bytes:
    return encode(scene(width, height).convert(mode), "JPEG", quality=quality, **params)


def webp(
    width: int = 64, height: int = 64, mode: str = "RGB", *, lossless: bool = False, **params: Any
) -> bytes:
    return encode(scene(width, height).convert(mode), "WEBP", lossless=lossless, **params)


def rgba_png(width: int = 64, height: int = 64, alpha: int = 0) -> bytes:
    """RGBA whose left half is fully transparent black (alpha `alpha`) and right half opaque red."""
    picture = Image.new("RGBA", (width, height), (0, 0, 0, alpha))
    picture.paste((255, 0, 0, 255), (width // 2, 0, width, height))
    return encode(picture, "PNG")


def la_png(width: int = 64, height: int = 64) -> bytes:
    """Grey+alpha: left half transparent black, right half opaque black."""
    picture = Image.new("LA", (width, height), (0, 0))
    picture.paste((0, 255), (width // 2, 0, width, height))
    return encode(picture, "PNG")


def palette_png(width: int = 64, height: int = 64, *, transparent: bool = True) -> bytes:
    """Palette ('P') PNG: left half palette index 0 (black, the transparent index when
    `transparent`), right half index 1 (blue)."""
    picture = Image.new("P", (width, height), 0)
    picture.putpalette([0, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    picture.paste(1, (width // 2, 0, width, height))
    return encode(picture, "PNG", **({"transparency": 0} if transparent else {}))


def grey_png16(width: int = 64, height: int = 64, value: int = 65535) -> bytes:
    """16-bit greyscale PNG (Pillow mode 'I;16'), every sample `value` (0..65535)."""
    return raw_png(width, height, bit_depth=16, colour_type=0, pixel=struct.pack(">H", value))


def rgb_png16(width: int = 64, height: int = 64, rgb: tuple[int, int, int] = (65535, 32768, 0)) -> bytes:
    """16-bit-per-channel RGB PNG (Pillow cannot write these)."""
    return raw_png(width, height, bit_depth=16, colour_type=2, pixel=struct.pack(">3H", *rgb))


def cmyk_jpeg(width: int = 64, height: int = 64, cmyk: tuple[int, int, int, int] = (0, 255, 255, 0)) -> bytes:
    """CMYK JPEG (print workflows; default colour: pure red ink)."""
    return encode(Image.new("CMYK", (width, height), cmyk), "JPEG", quality=95)


def grey_jpeg(width: int = 64, height: int = 64) -> bytes:
    return jpeg(width, height, "L")


def bilevel_png(width: int = 64, height: int = 64) -> bytes:
    return encode(quadrants(width, height).convert("1"), "PNG")


def mpo(width: int = 64, height: int = 64) -> bytes:
    """A multi-picture JPEG (MPO), as many phone cameras write: still a JPEG to every viewer."""
    first, second = scene(width, height), quadrants(width, height)
    return encode(first, "MPO", save_all=True, append_images=[second])


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rgb_icc(
    description: str = "Swapped red/green primaries",
    primaries: tuple[tuple[float, float, float], ...] = ((0.3851, 0.7169, 0.0971), (0.4361, 0.2225, 0.0139)),
    gamma: float = 2.2,
) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile. By default its red and green primaries
    are sRGB's green and red (D50-adapted), so a colour-managed conversion to sRGB turns stored
    (255, 0, 0) into (0, 255, 0): proof that a profile was applied, not merely dropped."""
    red, green = primaries
    blue = (0.1431, 0.0606, 0.7141)
    d50 = (0.9642, 1.0, 0.8249)

    def xyz(values: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    ascii_text = description.encode("ascii") + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * (4 + 4 + 2 + 1 + 67)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(d50)),
        (b"rXYZ", xyz(red)),
        (b"gXYZ", xyz(green)),
        (b"bXYZ", xyz(blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0no copyright\0\0\0\0"),
    ]
    table_size = 4 + 12 * len(tags)
    offset, table, blobs = 128 + table_size, [struct.pack(">I", len(tags))], []
    for signature, blob in tags:
        blob += b"\0" * (-len(blob) % 4)
        table.append(signature + struct.pack(">II", offset, len(blob)))
        blobs.append(blob)
        offset += len(blob)
    header = bytearray(128)
    struct.pack_into(">I", header, 0, offset)
    header[8:12] = b"\x02\x10\x00\x00"
    header[12:24] = b"mntrRGB XYZ "
    header[36:40] = b"acsp"
    struct.pack_into(">iii", header, 68, *(round(v * 65536) for v in d50))
    return bytes(header) + b"".join(table) + b"".join(blobs)


def with_icc(picture: Image.Image, icc: bytes, fmt: str = "JPEG", **params: Any) -> bytes:
    return encode(picture, fmt, icc_profile=icc, **params)


def png_with_metadata(width: int = 64, height: int = 64) -> bytes:
    """RGB PNG carrying text chunks, an ICC profile, EXIF (with GPS-like data) and a time."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret comment")
    info.add_itxt("Author", "someone", zip=True)
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0131] = "secret-software"  # Software
    return encode(scene(width, height), "PNG", pnginfo=info, icc_profile=srgb_icc(), exif=exif)


def jpeg_with_metadata(width: int = 64, height: int = 64) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x0131] = "secret-software"
    return encode(
        scene(width, height), "JPEG", quality=90, exif=exif, icc_profile=srgb_icc(), comment=b"secret comment"
    )


# ---------------------------------------------------------------------------------------------
# EXIF orientation


def oriented(orientation: int, width: int = 128, height: int = 96, fmt: str = "JPEG") -> bytes:
    """An image that *displays* as `quadrants(width, height)` once EXIF `orientation` (1..8) is
    applied: the pixels are stored transformed and tagged so a viewer undoes it."""
    displayed = quadrants(width, height)
    stored = displayed.transpose(_INVERSE[orientation]) if orientation != 1 else displayed
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    params: dict[str, Any] = {"exif": exif}
    if fmt == "JPEG":
        params["quality"] = 95
    if fmt == "WEBP":
        params["lossless"] = True
    return encode(stored, fmt, **params)


def oriented_jpeg(orientation: int, width: int = 128, height: int = 96) -> bytes:
    return oriented(orientation, width, height, "JPEG")


# ---------------------------------------------------------------------------------------------
# Formats and shapes the service must refuse


def _frames(width: int, height: int, count: int) -> list[Image.Image]:
    colours = [RED, GREEN, BLUE, YELLOW]
    return [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(count)]


def animated_gif(width: int = 32, height: int = 32, frames: int = 3) -> bytes:
    first, *rest = _frames(width, height, frames)
    return encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def animated_webp(width: int = 32, height: int = 32, frames: int = 3) -> bytes:
    first, *rest = _frames(width, height, frames)
    return encode(first, "WEBP", save_all=True, append_images=rest, duration=100, loop=0, lossless=True)


def apng(width: int = 32, height: int = 32, frames: int = 3) -> bytes:
    """Animated PNG (acTL/fcTL/fdAT chunks); begins with a valid still PNG, so only the frame
    count gives it away."""
    first, *rest = _frames(width, height, frames)
    return encode(first, "PNG", save_all=True, append_images=rest, duration=100, loop=0)


def gif(width: int = 32, height: int = 32) -> bytes:
    return encode(quadrants(width, height), "GIF")


def tiff(width: int = 32, height: int = 32) -> bytes:
    return encode(quadrants(width, height), "TIFF")


def bmp(width: int = 32, height: int = 32) -> bytes:
    return encode(quadrants(width, height), "BMP")


def ico(width: int = 32, height: int = 32) -> bytes:
    return encode(quadrants(width, height), "ICO")


def avif(width: int = 32, height: int = 32) -> bytes:
    return encode(quadrants(width, height), "AVIF")


def heic_header() -> bytes:
    """The opening `ftyp` box of a HEIC photo (iPhone default): enough to be recognised."""
    return struct.pack(">I", 24) + b"ftypheic" + struct.pack(">I", 0) + b"mif1heic" + b"\x00" * 64


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<rect width="64" height="64" fill="red"/></svg>\n'
    )


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def random_bytes(size: int = 4096, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def text() -> bytes:
    return b"this is not an image, just text\n"


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first `keep` fraction of `data` (at least 1 byte, at most all but 1)."""
    cut = min(len(data) - 1, max(1, int(len(data) * keep)))
    return data[:cut]


def unsupported_corpus() -> dict[str, bytes]:
    """Inputs that are not still PNG/JPEG/WebP images, by name."""
    return {
        "gif": gif(),
        "animated_gif": animated_gif(),
        "tiff": tiff(),
        "bmp": bmp(),
        "ico": ico(),
        "avif": avif(),
        "heic": heic_header(),
        "svg": svg(),
        "pdf": pdf(),
        "text": text(),
        "random": random_bytes(),
        "empty": b"",
    }


def animated_corpus() -> dict[str, bytes]:
    return {"apng": apng(), "animated_webp": animated_webp()}


def truncated_corpus(keep: Iterable[float] = (0.05, 0.5, 0.9)) -> dict[str, bytes]:
    """Cut-off PNG, JPEG and WebP files. The pictures are noisy so every cut lands in pixel
    data a decoder still needs."""
    whole: dict[str, Callable[[], bytes]] = {
        "png": lambda: encode(scene(256, 256, noise=64), "PNG"),
        "jpeg": lambda: encode(scene(256, 256, noise=64), "JPEG", quality=90),
        "webp": lambda: encode(scene(256, 256, noise=64), "WEBP", quality=90),
    }
    corpus = {}
    for name, make in whole.items():
        data = make()
        for fraction in keep:
            corpus[f"{name}-{int(fraction * 100)}%"] = truncated(data, fraction)
    return corpus


# ---------------------------------------------------------------------------------------------
# Hand-built PNGs


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def raw_png(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    colour_type: int = 2,
    pixel: bytes | None = None,
    extra_chunks: Iterable[tuple[bytes, bytes]] = (),
    idat: bytes | None = None,
    interlace: bool = False,
    row_filter: int = 0,
) -> bytes:
    """A PNG built chunk by chunk. Every pixel is `pixel` (raw sample bytes, whole bytes per
    pixel) unless `idat` (the compressed stream) is given; `extra_chunks` go between IHDR and
    IDAT; `interlace` lays the rows out in Adam7 passes; `row_filter` is each row's filter byte
    (0 = none; values above 4 are invalid)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, int(interlace))
    if idat is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
        sample = pixel if pixel is not None else b"\x80" * (channels * bit_depth // 8)
        passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
        stream = b""
        for x, y, dx, dy in passes:
            columns, rows = max(0, -(-(width - x) // dx)), max(0, -(-(height - y) // dy))
            if columns:
                stream += (bytes([row_filter]) + sample * columns) * rows
        idat = zlib.compress(stream, 6)
    chunks = [png_chunk(b"IHDR", header)]
    chunks += [png_chunk(kind, payload) for kind, payload in extra_chunks]
    chunks += [png_chunk(b"IDAT", idat), png_chunk(b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(chunks)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A decompression bomb's header: declares width x height pixels in a few dozen bytes. The
    pixel data is a token; a guard must refuse it from the header, before any decoding."""
    return raw_png(width, height, bit_depth=8, colour_type=0, idat=zlib.compress(b"\x00" * 1024))


def jpeg_bomb(width: int = 65000, height: int = 65000) -> bytes:
    """A small JPEG whose frame header (SOF0) claims width x height: what a decoder would
    allocate for. The entropy-coded data still describes 16x16 pixels."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def webp_bomb(width: int = 16383, height: int = 16383) -> bytes:
    """A WebP whose extended header (VP8X) declares a width x height canvas, around a 1x1
    lossless bitstream. libwebp allocates the canvas as soon as the file is opened."""
    bitstream = encode(Image.new("RGB", (1, 1), RED), "WEBP", lossless=True)[12:]  # the VP8L chunk
    canvas = struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + canvas
    body = b"WEBP" + vp8x + bitstream
    return b"RIFF" + struct.pack("<I", len(body)) + body


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order (to check what metadata an output carries)."""
    pos, kinds = len(PNG_SIGNATURE), []
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        kinds.append(kind)
        pos += 12 + length
    return kinds


def png_bad_crc(width: int = 64, height: int = 64) -> bytes:
    """A PNG whose IDAT checksum is wrong (bit rot in transit)."""
    data = bytearray(raw_png(width, height))
    idat_at = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat_at - 4 : idat_at])[0]
    data[idat_at + 4 + length] ^= 0xFF
    return bytes(data)


def tiny() -> bytes:
    """1x1 PNG."""
    return encode(Image.new("RGB", (1, 1), RED), "PNG")


def strip(width: int = 20000, height: int = 10) -> bytes:
    """A very long thin PNG: 20000x10 by default."""
    return encode(quadrants(width, height), "PNG")


def many_scans_jpeg(width: int = 2000, height: int = 2000, extra: int = 400) -> bytes:
    """A progressive JPEG whose last scan is repeated `extra` times: small on disk, but libjpeg
    entropy-decodes every scan over the whole picture (the repeated-scans attack)."""
    data = encode(Image.new("RGB", (width, height), (90, 120, 200)), "JPEG", progressive=True, quality=80)
    last_sos = data.rindex(b"\xff\xda")
    eoi = len(data) - 2
    return data[:eoi] + data[last_sos:eoi] * extra + data[eoi:]
