"""Image preparation (img2img.domain.imaging): formats, guards, orientation, modes, sizes,
pass-through, metadata and result re-encoding. Images are made in memory by tests.imagegen."""

from __future__ import annotations

import io
import json
import math
import typing
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageCms, ImageFile

from img2img.domain.errors import ImageTooLarge, InvalidRequest, ModelError, UnsupportedImage
from img2img.domain.imaging import (
    ALLOWED_SIZES,
    FILE_EXTENSIONS,
    MAX_ASPECT_RATIO,
    MIME_TYPES,
    PAD_COLOUR,
    ImageLimits,
    PreparedImage,
    detect_format,
    encode_result,
    nearest_allowed_size,
    preparation,
    prepare_image,
)
from img2img.domain.imaging.encoding import transient_png
from img2img.domain.imaging.geometry import Plan, _centre_box, resize, target_size
from img2img.domain.imaging.guards import MIN_SIDE, jpeg_scans
from img2img.domain.imaging.png_verifier import PngLayout
from img2img.domain.request import OutputFormat
from tests import imagegen
from tests.fixtures.bedrock_docs import FOLDER as FIXTURES

pytestmark = pytest.mark.unit

LIMITS = ImageLimits()
METADATA_KEYS = {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "Comment", "Author", "comment", "dpi"}


def prepare(data: bytes, mode: typing.Literal["fit", "pad", "reject"] = "fit", limits: ImageLimits = LIMITS):
    return prepare_image(data, mode, limits)


def decoded(result: PreparedImage | bytes) -> Image.Image:
    data = result.png if isinstance(result, PreparedImage) else result
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def assert_field(error: Exception, *fields: str) -> None:
    assert [d.field for d in error.details] == list(fields)  # type: ignore[attr-defined]


def assert_clean_png(data: bytes) -> None:
    """The model's payload: a PNG with pixel data only, no metadata of any kind."""
    assert data.startswith(imagegen.PNG_SIGNATURE)
    assert set(imagegen.png_chunk_types(data)) <= {b"IHDR", b"IDAT", b"IEND"}
    picture = decoded(data)
    assert picture.mode == "RGB"
    assert not METADATA_KEYS & set(picture.info)


# ---------------------------------------------------------------------------------------------
# detect_format


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (imagegen.png, "png"),
        (imagegen.jpeg, "jpeg"),
        (imagegen.webp, "webp"),
        (lambda: imagegen.webp(lossless=True), "webp"),
        (imagegen.mpo, "jpeg"),
        (imagegen.gif, "gif"),
        (imagegen.tiff, "tiff"),
        (imagegen.bmp, "bmp"),
        (imagegen.ico, "ico"),
        (imagegen.avif, "avif"),
        (imagegen.heic_header, "heic"),
        (imagegen.svg, "svg"),
        (lambda: b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>", "svg"),
        (imagegen.pdf, "pdf"),
        (imagegen.text, None),
        (imagegen.random_bytes, None),
        (lambda: b"", None),
    ],
)
def test_detect_format_reads_content(make, expected):
    assert detect_format(make()) == expected


def test_detect_format_ignores_what_a_name_would_say():
    # A GIF is a GIF whatever it is called; only bytes reach the function.
    assert detect_format(imagegen.gif()) == "gif"
    assert detect_format(b"photo.png") is None


def test_mime_types_and_extensions_cover_every_output_format():
    for fmt in typing.get_args(OutputFormat):
        assert MIME_TYPES[fmt].startswith("image/")
        assert FILE_EXTENSIONS[fmt].startswith(".")


# ---------------------------------------------------------------------------------------------
# Accepted formats and refusals


@pytest.mark.parametrize(
    ("make", "source_format"),
    [
        (lambda: imagegen.png(300, 200), "png"),
        (lambda: imagegen.jpeg(300, 200), "jpeg"),
        (lambda: imagegen.webp(300, 200), "webp"),
        (lambda: imagegen.webp(300, 200, lossless=True), "webp"),
        (lambda: imagegen.webp(300, 200, "RGBA"), "webp"),
        (lambda: imagegen.mpo(300, 200), "jpeg"),
    ],
)
def test_accepts_still_png_jpeg_webp(make, source_format):
    result = prepare(make())
    assert result.source_format == source_format
    assert (result.source_width, result.source_height) == (300, 200)
    assert (result.width, result.height) == (1216, 832)
    assert not result.passthrough
    assert decoded(result).size == (1216, 832)
    assert_clean_png(result.png)


@pytest.mark.parametrize("name", sorted(imagegen.unsupported_corpus()))
def test_refuses_other_formats_naming_what_it_found(name):
    data = imagegen.unsupported_corpus()[name]
    with pytest.raises(UnsupportedImage) as caught:
        prepare(data)
    assert_field(caught.value, "init_image")
    assert "PNG, JPEG or WebP" in caught.value.message
    detected = detect_format(data)
    if detected:
        assert detected.upper() in caught.value.message
    assert caught.value.status == 415


@pytest.mark.parametrize("name", sorted(imagegen.animated_corpus()))
def test_refuses_animated_png_and_webp(name):
    with pytest.raises(UnsupportedImage) as caught:
        prepare(imagegen.animated_corpus()[name])
    assert_field(caught.value, "init_image")
    assert "animated" in caught.value.message


def test_a_single_frame_apng_is_a_still_png():
    assert prepare(imagegen.apng(64, 64, frames=1)).width == 1024


@pytest.mark.parametrize("name", sorted(imagegen.truncated_corpus()))
def test_refuses_truncated_files(name):
    with pytest.raises(UnsupportedImage) as caught:
        prepare(imagegen.truncated_corpus()[name])
    assert_field(caught.value, "init_image")
    assert "truncated or corrupt" in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("cut", [8, 16, 40, 100, -40, -13])
def test_refuses_cuts_at_header_and_tail_positions(fmt, cut):
    data = imagegen.encode(imagegen.scene(64, 64, noise=64), fmt)
    with pytest.raises(UnsupportedImage):
        prepare(data[:cut])


def test_a_passthrough_candidate_is_fully_decoded():
    # Chunks and checksums are valid, the zlib stream holds a tenth of the rows: only a full
    # decode notices, and the pass-through path must do one.
    rows = (b"\x00" + b"\x80" * 3 * 1024) * 100
    data = imagegen.raw_png(1024, 1024, idat=zlib.compress(rows))
    with pytest.raises(UnsupportedImage):
        prepare(data)


def test_an_interlaced_png_is_accepted_and_re_encoded():
    data = imagegen.raw_png(1024, 1024, pixel=b"\x10\x20\x30", interlace=True)
    result = prepare(data)
    assert not result.passthrough
    assert decoded(result).getextrema() == ((16, 16), (32, 32), (48, 48))


@pytest.mark.parametrize(
    "data",
    [
        imagegen.raw_png(1024, 1024, row_filter=7),
        imagegen.raw_png(65, 64, interlace=True, idat=zlib.compress(b"\x00" * 100)),
        imagegen.raw_png(64, 64, idat=zlib.compress(b"\x00" * (64 * 193 + 1))),
        imagegen.raw_png(64, 64, idat=zlib.compress(b"\x00" * (64 * 193))[:-6]),
    ],
    ids=["unknown-row-filter", "short-interlaced-stream", "stream-too-long", "unterminated-stream"],
)
def test_refuses_png_pixel_streams_that_disagree_with_the_header(data):
    with pytest.raises(UnsupportedImage):
        prepare(data)


def with_ihdr_byte(data: bytes, offset: int, value: int) -> bytes:
    """`data` with one IHDR payload byte changed and the chunk's CRC recomputed."""
    patched = bytearray(data)
    patched[16 + offset] = value
    patched[29:33] = zlib.crc32(bytes(patched[12:29])).to_bytes(4, "big")
    return bytes(patched)


@pytest.mark.parametrize(
    "data",
    [
        with_ihdr_byte(imagegen.raw_png(64, 64), 9, 5),  # colour type 5 does not exist
        imagegen.raw_png(0, 10, idat=zlib.compress(b"")),
        imagegen.png_bad_crc(),
        imagegen.PNG_SIGNATURE + imagegen.random_bytes(500),
        b"\xff\xd8\xff\xe0" + imagegen.random_bytes(500),
        b"RIFF\x00\x01\x00\x00WEBPVP8 " + imagegen.random_bytes(500),
        imagegen.raw_png(64, 64, idat=b"not zlib at all"),
    ],
    ids=[
        "png-colour-type-5",
        "png-zero-width",
        "png-bad-crc",
        "png-garbage",
        "jpeg-garbage",
        "webp-garbage",
        "png-bad-zlib",
    ],
)
def test_refuses_corrupt_files(data):
    with pytest.raises(UnsupportedImage) as caught:
        prepare(data)
    assert_field(caught.value, "init_image")


def test_truncated_images_stay_refused_even_if_someone_flips_pillows_switch(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        prepare(imagegen.png())


# ---------------------------------------------------------------------------------------------
# Size guards


def test_byte_cap():
    data = imagegen.png(64, 64)
    assert prepare(data, limits=ImageLimits(max_bytes=len(data))).width == 1024
    with pytest.raises(ImageTooLarge) as caught:
        prepare(data, limits=ImageLimits(max_bytes=len(data) - 1))
    assert_field(caught.value, "init_image")
    assert caught.value.status == 413


@pytest.mark.parametrize("make", [imagegen.png, imagegen.jpeg, imagegen.webp])
def test_pixel_cap(make):
    data = make(200, 100)
    assert prepare(data, limits=ImageLimits(max_pixels=20_000)).width == 1344
    with pytest.raises(ImageTooLarge) as caught:
        prepare(data, limits=ImageLimits(max_pixels=19_999, max_webp_pixels=10**9))
    assert_field(caught.value, "init_image")


def test_webp_has_its_own_lower_pixel_cap():
    # WebP decodes at ~16 bytes a pixel with no reduced-size path: its cap is the lower one.
    limits = ImageLimits(max_pixels=20_000, max_webp_pixels=19_999)
    assert prepare(imagegen.png(200, 100), limits=limits).width == 1344
    with pytest.raises(ImageTooLarge):
        prepare(imagegen.webp(200, 100), limits=limits)
    assert ImageLimits().pixel_cap("webp") <= ImageLimits().pixel_cap("png")


@pytest.mark.parametrize("make", [imagegen.png_bomb, imagegen.webp_bomb])
def test_bombs_are_refused_from_the_header_before_pillow_opens_them(make, monkeypatch):
    def must_not_open(*args, **kwargs):
        raise AssertionError("Image.open was called on a bomb")

    monkeypatch.setattr(Image, "open", must_not_open)
    with pytest.raises(ImageTooLarge):
        prepare(make())


@pytest.mark.parametrize("make", [imagegen.png_bomb, imagegen.jpeg_bomb, imagegen.webp_bomb])
@pytest.mark.parametrize("max_pixels", [LIMITS.max_pixels, 10**12])
def test_bombs_are_too_large_whatever_the_configured_cap(make, max_pixels):
    # With a cap above Pillow's own, Pillow's DecompressionBombError is the backstop.
    with pytest.raises(ImageTooLarge):
        prepare(make(), limits=ImageLimits(max_pixels=max_pixels, max_webp_pixels=max_pixels))


def test_a_declared_jpeg_size_above_the_cap_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageTooLarge):
        prepare(imagegen.jpeg_bomb(10_000, 6_000))  # 60 MP, under Pillow's own warning level


def test_pillows_global_pixel_limit_is_left_alone():
    before = Image.MAX_IMAGE_PIXELS
    for max_pixels in (100, 10**12):
        with pytest.raises(ImageTooLarge):
            prepare(imagegen.png_bomb(), limits=ImageLimits(max_pixels=max_pixels))
    assert before == Image.MAX_IMAGE_PIXELS


# ---------------------------------------------------------------------------------------------
# EXIF orientation

QUADRANT_CENTRES = {
    "top_left": (0.25, 0.25),
    "top_right": (0.75, 0.25),
    "bottom_left": (0.25, 0.75),
    "bottom_right": (0.75, 0.75),
}


def assert_quadrants(picture: Image.Image, box: tuple[int, int, int, int] | None = None) -> None:
    left, top, right, bottom = box or (0, 0, *picture.size)
    for corner, (fx, fy) in QUADRANT_CENTRES.items():
        point = (int(left + (right - left) * fx), int(top + (bottom - top) * fy))
        pixel = picture.getpixel(point)
        assert close_to(pixel, imagegen.QUADRANT_COLOURS[corner], 40), (corner, pixel)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["fit", "pad"])
def test_exif_orientation_is_applied(fmt, orientation, mode):
    data = imagegen.oriented(orientation, 128, 96, fmt)
    result = prepare(data, mode)
    assert (result.width, result.height) == (1152, 896)  # displayed 128x96 is landscape
    stored = (96, 128) if orientation >= 5 else (128, 96)
    assert (result.source_width, result.source_height) == stored
    assert_quadrants(decoded(result))
    assert ("exif-transpose" in " ".join(result.operations)) == (orientation != 1)
    assert_clean_png(result.png)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_a_large_portrait_photo(orientation):
    # Drafted JPEG decoding happens in stored axes; the target must be rotated with it.
    result = prepare(imagegen.oriented(orientation, 900, 1200), "fit")
    assert (result.width, result.height) == (896, 1152)
    assert_quadrants(decoded(result))


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_invalid_orientation_values_are_ignored(value):
    exif = Image.Exif()
    exif[imagegen.EXIF_ORIENTATION_TAG] = value
    data = imagegen.encode(imagegen.quadrants(128, 96), "JPEG", exif=exif, quality=95)
    result = prepare(data)
    assert_quadrants(decoded(result))
    assert not any(op.startswith("exif-transpose") for op in result.operations)


# ---------------------------------------------------------------------------------------------
# Modes and colour


def test_cmyk_jpeg_becomes_rgb():
    result = prepare(imagegen.cmyk_jpeg())
    assert "convert-CMYK-RGB" in result.operations
    assert close_to(decoded(result).getpixel((500, 500)), (255, 0, 0), 10)


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (32768, 128), (65535, 255), (1000, 4)])
def test_sixteen_bit_grey_is_scaled_not_clipped(value, expected):
    result = prepare(imagegen.grey_png16(value=value))
    assert decoded(result).getpixel((500, 500)) == (expected,) * 3


def test_sixteen_bit_rgb_keeps_its_colours():
    result = prepare(imagegen.rgb_png16(1024, 1024))
    assert not result.passthrough
    assert close_to(decoded(result).getpixel((10, 10)), (255, 128, 0), 1)


@pytest.mark.parametrize(
    ("data", "left", "right"),
    [
        (imagegen.rgba_png(), (255, 255, 255), (255, 0, 0)),
        (imagegen.rgba_png(alpha=128), (127, 127, 127), (255, 0, 0)),
        (imagegen.la_png(), (255, 255, 255), (0, 0, 0)),
        (imagegen.palette_png(), (255, 255, 255), (0, 0, 255)),
        (imagegen.palette_png(transparent=False), (0, 0, 0), (0, 0, 255)),
        (imagegen.webp(64, 64, "RGBA", lossless=True), None, None),
    ],
    ids=["rgba", "rgba-half", "la", "palette-transparent", "palette", "webp-rgba"],
)
def test_alpha_is_laid_on_white(data, left, right):
    picture = decoded(prepare(data))
    assert picture.mode == "RGB"
    if left is not None:
        assert close_to(picture.getpixel((100, 512)), left, 2)
        assert close_to(picture.getpixel((900, 512)), right, 2)


def test_grey_and_bilevel_become_rgb():
    grey = decoded(prepare(imagegen.grey_jpeg(64, 64)))
    red, green, blue = grey.split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()
    bilevel = decoded(prepare(imagegen.bilevel_png(64, 64)))
    assert bilevel.mode == "RGB"


def test_an_embedded_profile_is_applied_then_dropped():
    # The profile says stored red is sRGB green: a managed conversion shows it.
    red = Image.new("RGB", (64, 64), (255, 0, 0))
    for fmt, params in (("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True})):
        result = prepare(imagegen.with_icc(red, imagegen.rgb_icc(), fmt, **params))
        assert "icc-RGB-to-srgb" in result.operations
        assert close_to(decoded(result).getpixel((500, 500)), (0, 255, 0), 4)
        assert_clean_png(result.png)


@pytest.mark.parametrize(
    "icc",
    [imagegen.srgb_icc(), ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(), b"junk" * 40],
    ids=["srgb", "lab-profile-on-rgb", "junk"],
)
def test_srgb_unusable_and_junk_profiles_are_dropped_without_conversion(icc):
    red = Image.new("RGB", (64, 64), (255, 0, 0))
    result = prepare(imagegen.with_icc(red, icc, quality=95))
    assert not any(op.startswith("icc-RGB") for op in result.operations)
    assert close_to(decoded(result).getpixel((500, 500)), (255, 0, 0), 4)
    assert_clean_png(result.png)


@pytest.mark.parametrize(
    "make", [imagegen.png_with_metadata, imagegen.jpeg_with_metadata], ids=["png", "jpeg"]
)
@pytest.mark.parametrize("size", [(1024, 1024), (300, 200)])
def test_metadata_is_stripped(make, size):
    result = prepare(make(*size))
    assert not result.passthrough
    assert_clean_png(result.png)
    assert b"secret" not in result.png
    assert b"CameraMaker" not in result.png


# ---------------------------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1000, 1000), (1024, 1024)),
        ((4000, 3000), (1152, 896)),
        ((3000, 4000), (896, 1152)),
        ((1920, 1080), (1344, 768)),
        ((1080, 1920), (768, 1344)),
        ((3000, 2000), (1216, 832)),
        ((2000, 3000), (832, 1216)),
        ((2400, 1000), (1536, 640)),
        ((1000, 2400), (640, 1536)),
        ((10_000, 1000), (1536, 640)),
        ((1, 1), (1024, 1024)),
        *((size, size) for size in ALLOWED_SIZES),
    ],
)
def test_nearest_allowed_size(size, expected):
    assert nearest_allowed_size(*size) == expected


def test_fit_scales_to_cover_and_centre_crops():
    result = prepare(imagegen.jpeg(4000, 3000))
    assert (result.width, result.height) == (1152, 896)
    assert "fit-crop 4000x3000->1152x896" in result.operations
    assert any(op.startswith("jpeg-draft 4000x3000->") for op in result.operations)
    # a wide source loses its sides, evenly
    picture = decoded(prepare(imagegen.encode(imagegen.quadrants(1600, 200), "PNG")))
    assert (picture.size) == (1536, 640)
    assert_quadrants(picture)


@pytest.mark.parametrize("mode", ["fit", "pad"])
@pytest.mark.parametrize("size", [(2000, 1500), (1500, 2000), (1999, 1333)])
def test_a_drafted_jpeg_is_resampled_in_two_passes_to_the_same_pixels_as_one(size, mode):
    """resize closes the draft between Pillow's two passes, to lower the job's peak memory."""
    draft = decoded(imagegen.jpeg(*size))
    plan = Plan(1, size, target_size(size, mode), mode)
    expected = decoded(imagegen.jpeg(*size))
    picture = resize(draft, plan, [], drafted=True)
    if mode == "pad":
        one_call = expected.resize(plan.scaled_size(size), Image.Resampling.BICUBIC)
    else:
        one_call = expected.resize(plan.target, Image.Resampling.BICUBIC, box=_centre_box(size, plan.target))
    assert picture.tobytes() == one_call.tobytes()
    with pytest.raises(ValueError, match="closed"):
        draft.load()


def test_preparation_takes_the_two_pass_path_for_a_drafted_jpeg_only(monkeypatch):
    seen: list[bool] = []
    real = preparation.resize

    def spy(picture, plan, ops, *, drafted=False):
        seen.append(drafted)
        return real(picture, plan, ops, drafted=drafted)

    monkeypatch.setattr(preparation, "resize", spy)
    prepare(imagegen.jpeg(4000, 3000))
    prepare(imagegen.encode(imagegen.quadrants(1600, 200), "PNG"))
    assert seen == [True, False]


def test_pad_scales_to_fit_inside_and_pads_with_neutral_grey():
    result = prepare(imagegen.encode(imagegen.quadrants(1600, 200), "PNG"), "pad")
    picture = decoded(result)
    assert picture.size == (1536, 640)
    assert "pad 1600x200->1536x640" in result.operations
    content = (0, 224, 1536, 416)  # 1600x200 scaled by 0.96 is 1536x192, centred
    assert picture.getpixel((768, 100)) == PAD_COLOUR
    assert picture.getpixel((768, 540)) == PAD_COLOUR
    assert_quadrants(picture, content)


def test_a_source_with_an_allowed_aspect_is_only_resized():
    for mode in ("fit", "pad"):
        result = prepare(imagegen.png(512, 512), mode)
        assert "resize 512x512->1024x1024" in result.operations
        picture = decoded(result)
        assert picture.getpixel((0, 0)) != PAD_COLOUR


@pytest.mark.parametrize("mode", ["fit", "pad"])
def test_the_smallest_source_is_upscaled(mode):
    result = prepare(imagegen.encode(Image.new("RGB", (64, 64), (255, 0, 0)), "PNG"), mode)
    assert (result.width, result.height) == (1024, 1024)
    assert decoded(result).getextrema() == ((255, 255), (0, 0), (0, 0))


@pytest.mark.parametrize("size", [(1, 1), (63, 1000), (1000, 63)])
def test_a_source_under_the_models_minimum_side_is_refused(size):
    """Stability documents "Minimum 64 pixels per side" for the source (the fixture cites the
    page): fitting a smaller one up to an SDXL size would bill a call on next to nothing."""
    facts = json.loads((FIXTURES / "sd3-5-large.json").read_text())
    assert facts["request"]["fields"]["image"]["doc"].startswith("Base64-encoded input image. Minimum 64")
    with pytest.raises(InvalidRequest) as caught:
        prepare(imagegen.encode(Image.new("RGB", size), "PNG"))
    assert_field(caught.value, "init_image")
    assert f"at least {MIN_SIDE} pixels" in caught.value.message


@pytest.mark.parametrize("mode", ["fit", "pad"])
def test_a_strip_beyond_the_aspect_limit_is_refused(mode):
    with pytest.raises(InvalidRequest) as caught:
        prepare(imagegen.strip(20000, 10), mode)
    assert_field(caught.value, "init_image")
    assert "20000x10" in caught.value.message


@pytest.mark.parametrize("mode", ["fit", "pad"])
def test_the_aspect_limit_is_inclusive(mode):
    limit = int(MAX_ASPECT_RATIO)
    assert prepare(imagegen.strip(limit * 64, 64), mode).width == 1536
    assert prepare(imagegen.strip(64, limit * 64), mode).height == 1536
    with pytest.raises(InvalidRequest):
        prepare(imagegen.strip(limit * 64 + 1, 64), mode)


def test_reject_accepts_an_allowed_size():
    result = prepare(imagegen.jpeg(1344, 768), "reject")
    assert (result.width, result.height) == (1344, 768)
    assert result.operations == ("strip-metadata",)


def test_reject_refuses_other_sizes_and_points_to_fit_and_pad():
    with pytest.raises(InvalidRequest) as caught:
        prepare(imagegen.jpeg(1000, 800), "reject")
    assert_field(caught.value, "init_image", "resize_mode")
    for width, height in ALLOWED_SIZES:
        assert f"{width}x{height}" in caught.value.message
    assert "fit" in caught.value.details[1].message
    assert "pad" in caught.value.details[1].message


def test_reject_judges_the_size_as_displayed():
    sideways = imagegen.oriented(6, 768, 1344)  # stored 1344x768, displayed 768x1344
    result = prepare(sideways, "reject")
    assert (result.width, result.height) == (768, 1344)
    with pytest.raises(InvalidRequest, match="1024x1000"):
        prepare(imagegen.oriented(6, 1024, 1000), "reject")


def test_reject_refuses_a_strip_as_a_size_problem():
    with pytest.raises(InvalidRequest) as caught:
        prepare(imagegen.strip(20000, 64), "reject")
    assert_field(caught.value, "init_image", "resize_mode")


# ---------------------------------------------------------------------------------------------
# Pass-through


@pytest.mark.parametrize("size", ALLOWED_SIZES)
@pytest.mark.parametrize("mode", ["fit", "pad", "reject"])
def test_a_clean_png_of_an_allowed_size_passes_through_untouched(size, mode):
    data = imagegen.png(*size)
    result = prepare(data, mode)
    assert result.passthrough
    assert result.png is data
    assert (result.width, result.height) == size
    assert result.operations == ("passthrough",)
    assert result.resize_mode == mode


@pytest.mark.parametrize(
    "data",
    [
        imagegen.png(1024, 1024, "RGBA"),
        imagegen.png(1024, 1024, "L"),
        imagegen.png(1024, 1024, "P"),
        imagegen.rgb_png16(1024, 1024),
        imagegen.png_with_metadata(1024, 1024),
        imagegen.oriented(1, 1024, 1024, "PNG"),
        imagegen.png(1024, 1024) + b"trailing bytes",
        imagegen.png(1000, 1000),
        imagegen.jpeg(1024, 1024),
        imagegen.webp(1024, 1024, lossless=True),
    ],
    ids=["rgba", "grey", "palette", "16-bit", "metadata", "exif", "trailing", "size", "jpeg", "webp"],
)
def test_anything_else_is_re_encoded(data):
    result = prepare(data)
    assert not result.passthrough
    assert (result.width, result.height) == (1024, 1024)
    assert_clean_png(result.png)


def test_a_noisy_png_split_over_many_idat_chunks_passes_through():
    data = imagegen.png(1024, 1024, noise=64)
    assert imagegen.png_chunk_types(data).count(b"IDAT") > 1
    assert prepare(data).png is data


def test_rendering_hint_chunks_do_not_stop_pass_through():
    data = imagegen.raw_png(1024, 1024, extra_chunks=[(b"sRGB", b"\x00"), (b"pHYs", b"\x00" * 9)])
    assert prepare(data).passthrough


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis)

dimension = st.integers(min_value=64, max_value=640)


def within_aspect_limit(size: tuple[int, int]) -> bool:
    width, height = size
    return max(width / height, height / width) <= MAX_ASPECT_RATIO


sizes = st.tuples(dimension, dimension).filter(within_aspect_limit)


def log_distance(size: tuple[int, int], other: tuple[int, int]) -> float:
    return abs(math.log(size[0] / size[1]) - math.log(other[0] / other[1]))


@given(st.tuples(st.integers(1, 100_000), st.integers(1, 100_000)))
def test_nearest_allowed_size_is_allowed_and_nearest(size):
    chosen = nearest_allowed_size(*size)
    assert chosen in ALLOWED_SIZES
    assert all(log_distance(size, chosen) <= log_distance(size, other) + 1e-12 for other in ALLOWED_SIZES)


@settings(max_examples=25, deadline=None)
@given(sizes)
def test_fit_output_is_an_allowed_size_with_no_padding(size):
    red = imagegen.encode(Image.new("RGB", size, (255, 0, 0)), "PNG")
    result = prepare(red, "fit")
    assert (result.width, result.height) == nearest_allowed_size(*size)
    red_band, green_band, blue_band = decoded(result).getextrema()
    assert red_band[0] >= 250 and green_band[1] <= 5 and blue_band[1] <= 5  # red edge to edge


@settings(max_examples=25, deadline=None)
@given(sizes)
def test_pad_output_holds_the_whole_image(size):
    width, height = size
    result = prepare(imagegen.encode(imagegen.quadrants(width, height), "PNG"), "pad")
    target = nearest_allowed_size(width, height)
    assert (result.width, result.height) == target
    picture = decoded(result)
    box = ImageChops.difference(picture, Image.new("RGB", target, PAD_COLOUR)).getbbox()
    assert box is not None
    scale = min(target[0] / width, target[1] / height)
    assert abs((box[2] - box[0]) - width * scale) <= 2
    assert abs((box[3] - box[1]) - height * scale) <= 2
    assert box[0] == 0 or box[1] == 0  # it touches two opposite edges: nothing cut off
    if width % 2 == 0 and height % 2 == 0:  # even sides: the quadrants are exact halves
        assert_quadrants(picture, box)


# ---------------------------------------------------------------------------------------------
# transient_png: the prepared source's encoder


@pytest.mark.parametrize("level", [0, 1, 6])
def test_transient_pngs_hold_exactly_the_pixels_and_nothing_else(level):
    picture = decoded(imagegen.jpeg(1152, 896))
    data = transient_png(picture, level=level)
    assert_clean_png(data)
    assert decoded(data).tobytes() == picture.tobytes()
    layout = PngLayout.read(data)
    layout.check_pixel_stream(data)  # what the source guards would check of it
    assert layout.can_pass_through()


def test_transient_pngs_take_rgb_pictures_only():
    with pytest.raises(ValueError, match="RGB"):
        transient_png(Image.new("RGBA", (8, 8)), level=1)


# ---------------------------------------------------------------------------------------------
# encode_result


@pytest.mark.parametrize(
    ("make", "fmt"), [(imagegen.png, "png"), (imagegen.jpeg, "jpeg"), (imagegen.webp, "webp")]
)
def test_a_result_in_the_requested_format_passes_through(make, fmt):
    data = make(64, 64)
    assert encode_result(data, fmt) is data


def test_a_png_result_passes_through_without_decoding_its_pixels(monkeypatch):
    data = imagegen.png(64, 64, noise=64)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a PNG result in the requested format must not be decoded")

    monkeypatch.setattr(Image, "open", no_decoding)
    assert encode_result(data, "png") is data


def _damaged_pngs() -> dict[str, bytes]:
    whole = imagegen.png(64, 64, noise=64)
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0x01  # a byte of pixel data: its chunk's CRC no longer matches
    end = whole.index(b"IEND") - 4
    idat = imagegen.png_chunk(b"IDAT", zlib.compress(b"\x00" + b"\x80" * 3))
    return {
        "bit_flipped": bytes(flipped),
        "no_iend": whole[:end],
        "cut_in_iend": whole[:-2],
        "no_idat": imagegen.raw_png(1, 1)[:33] + imagegen.png_chunk(b"IEND", b""),
        "bad_bit_depth": imagegen.raw_png(1, 1, bit_depth=4, idat=idat[8:-4]),
        "zero_width": imagegen.raw_png(0, 1, idat=idat[8:-4]),
        "bomb": imagegen.png_bomb(),
    }


@pytest.mark.parametrize("name", list(_damaged_pngs()))
def test_png_results_that_pass_through_are_checked(name):
    with pytest.raises(ModelError, match="PNG image that cannot be decoded"):
        encode_result(_damaged_pngs()[name], "png")


@pytest.mark.parametrize("source", ["png", "jpeg"])
@pytest.mark.parametrize("output", typing.get_args(OutputFormat))
def test_results_are_re_encoded_in_the_requested_format(source, output):
    data = imagegen.png(64, 64) if source == "png" else imagegen.jpeg(64, 64)
    out = encode_result(data, output)
    assert detect_format(out) == output
    picture = decoded(out)
    assert picture.size == (64, 64)
    assert close_to(picture.getpixel((32, 32)), decoded(data).getpixel((32, 32)), 12)


def test_jpeg_results_lay_alpha_on_white_and_webp_keeps_it():
    data = imagegen.rgba_png()
    assert decoded(encode_result(data, "jpeg")).getpixel((5, 5)) == (255, 255, 255)
    webp = decoded(encode_result(data, "webp"))
    assert webp.mode == "RGBA"
    assert webp.getpixel((5, 5))[3] == 0


@pytest.mark.parametrize("output", ["jpeg", "webp"])
def test_re_encoded_results_carry_no_metadata(output):
    out = encode_result(imagegen.png_with_metadata(), output)
    assert not METADATA_KEYS & set(decoded(out).info)
    assert b"secret" not in out
    assert b"CameraMaker" not in out


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        imagegen.truncated(imagegen.png(64, 64, noise=64)),
        imagegen.gif(),
        imagegen.png_bomb(),
    ],
    ids=["empty", "garbage", "truncated", "gif", "bomb"],
)
def test_undecodable_results_are_model_errors(data):
    with pytest.raises(ModelError) as caught:
        encode_result(data, "png")
    assert caught.value.status == 502


# ---------------------------------------------------------------------------------------------
# Decode work


def test_jpeg_scans_are_counted_without_decoding():
    assert jpeg_scans(imagegen.jpeg(64, 64)) == 1  # baseline: one interleaved scan
    progressive = imagegen.encode(imagegen.scene(64, 64), "JPEG", progressive=True)
    assert 6 <= jpeg_scans(progressive) <= 12  # libjpeg's simple progression
    assert jpeg_scans(imagegen.many_scans_jpeg(64, 64, extra=50)) == jpeg_scans(progressive) + 50


def test_a_jpeg_of_repeated_scans_is_refused_before_decoding():
    data = imagegen.many_scans_jpeg(2000, 2000, extra=400)
    assert len(data) < 100_000
    with pytest.raises(ImageTooLarge) as caught:
        prepare(data)
    assert_field(caught.value, "init_image")
    assert "scans of 2000x2000" in caught.value.message


def test_a_photo_of_many_scans_at_a_modest_size_is_still_taken():
    assert prepare(imagegen.many_scans_jpeg(256, 256, extra=400)).width == 1024
