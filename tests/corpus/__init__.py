"""The bad-input corpus: every kind of input a stranger can send either door, each named, with
the outcome the service must give. Data only; `tests/corpus/doors.py` runs a case through the
API door (POST /v1/image-to-image) or the S3 door (an object dropped under inbox/).

A case is one of five kinds:

    image     source bytes. API: base64 in `init_image`. S3: dropped as inbox/corpus/<name>.<ext>
              with a prompt in its metadata.
    body      changes to a valid request body (a key set to ... is removed). API: the JSON body,
              with the source inline. S3: a manifest inbox/corpus/<name>.json naming its own copy
              of a valid source, uploads/<the local user's tag>/corpus/<name>.png.
    raw       bytes sent as they are. API: the request body. S3: the manifest's bytes.
    metadata  S3 only: a valid image dropped with these x-amz-meta-* values.
    key       a valid image under an awkward object key. API: uploaded there and named by
              init_image_s3_key. S3: dropped under inbox/corpus/ with that name.

Every case on the S3 door ends in exactly one metadata JSON: an image dropped as
inbox/corpus/<name> at results/corpus/<name>.json (results/key-too-long/<sha256 of its key>.json
when that would not fit in S3's 1,024 bytes); a manifest inbox/corpus/<case>.json at
results/corpus/<case>.json.json when the manifest itself is refused, else (its jobs listed
there) at manifest-results/<h>/<named key>.json, <h> the first 16 hex digits of the sha256 of
the manifest's key (the README's key scheme).
A rejection makes no model call; an accepted case makes exactly one (the emulator counts them).

    from tests.corpus import CASES, cases_for
    for case in cases_for("s3"): ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from img2img.domain.caller import Caller
from img2img.domain.request import MAX_SEED, ImageToImageRequest
from img2img_local.resources import LOCAL_PRINCIPAL_ID
from tests import imagegen

Door = Literal["api", "s3"]
Kind = Literal["image", "body", "raw", "metadata", "key"]
BOTH: frozenset[Door] = frozenset({"api", "s3"})
API_ONLY: frozenset[Door] = frozenset({"api"})
S3_ONLY: frozenset[Door] = frozenset({"s3"})

PROMPT = "a lighthouse on a cliff, oil painting"
# Sources that manifests and init_image_s3_key name (no notification): local mode's one user's
# own uploads (unsigned API requests and S3 drops are theirs), as POST /v1/uploads hands out.
SOURCE_PREFIX = f"{Caller('iam', LOCAL_PRINCIPAL_ID).upload_prefix}corpus/"
# Another caller's uploads: no request of the local user may name one, whether it exists or not.
OTHER_CALLERS_PREFIX = f"{Caller('iam', 'AIDAOTHERCALLEREXAMPLE').upload_prefix}corpus/"
UPLOADED_PREFIXES = (SOURCE_PREFIX, OTHER_CALLERS_PREFIX)  # the corpus puts a valid image there first
INBOX_PREFIX = "inbox/corpus/"
RESULTS_PREFIX = "results/corpus/"
MANIFEST_RESULTS_PREFIX = "manifest-results/"
MAX_KEY_BYTES = 1024  # S3's limit on an object key
MAX_MANIFEST_IMAGES = 1000  # README: a manifest names at most 1,000 images
MISSING = ...  # a body override that removes the key


@dataclass(frozen=True)
class Expect:
    """What the service must answer. `status` is the API door's HTTP status; on the S3 door a
    rejection is a FAILED metadata JSON whose error has `code` and names `field`."""

    status: int
    code: str | None  # the error code; None when the input is accepted
    field: str | None  # a field one of the error's details names; None when none must
    model_calls: int  # InvokeModel attempts the case may cost: 0 for every rejection

    @property
    def accepted(self) -> bool:
        return self.code is None


ACCEPTED = Expect(200, None, None, 1)


def invalid(field: str | None) -> Expect:
    return Expect(400, "invalid_request", field, 0)


def unsupported() -> Expect:
    return Expect(415, "unsupported_image", "init_image", 0)


def too_large(field: str | None = "init_image") -> Expect:
    return Expect(413, "image_too_large", field, 0)


@dataclass(frozen=True)
class Case:
    name: str
    kind: Kind
    why: str
    expect: Expect
    doors: frozenset[Door] = BOTH
    s3_expect: Expect | None = None  # where the S3 door's answer differs from the API's
    image: Callable[[], bytes] | None = None
    extension: str = "png"  # the name an image or key case is dropped under (never trusted)
    body: dict[str, Any] = field(default_factory=dict)
    raw: Callable[[], bytes] | None = None
    manifest_raw: Callable[[str], bytes] | None = None  # S3 door, given the source key; default `raw`
    upload_source: bool = True  # S3 door: put a valid image at source_key first
    metadata: dict[str, str] | None = None
    key: str | None = None
    content_type: str | None = "application/json"  # None: no Content-Type header at all
    # A source corrupt past its headers: only decoding finds it, so the API refuses it when the
    # job runs (POST /v1/jobs: 202, then FAILED), not at admission with the other refusals.
    found_by_decoding: bool = False

    def expected(self, door: Door) -> Expect:
        return self.s3_expect if door == "s3" and self.s3_expect is not None else self.expect

    @property
    def dropped_name(self) -> str:
        """The name below inbox/corpus/ the S3 door gets it under."""
        if self.kind == "key":
            assert self.key is not None
            return self.key
        if self.kind in ("image", "metadata"):
            return f"{self.name}.{self.extension}"
        return f"{self.name}.json"  # a manifest

    @property
    def result_stems(self) -> tuple[str, ...]:
        """Where its S3-door results may go: <stem>.json and <stem>.<format>. A manifest has two
        places: its own (refused as a whole) and its named image's job."""
        own = f"{RESULTS_PREFIX}{self.dropped_name}"
        if len(f"{own}.webp".encode()) > MAX_KEY_BYTES:
            return (f"results/key-too-long/{_sha256(INBOX_PREFIX + self.dropped_name)}",)
        if self.kind in ("image", "metadata", "key"):
            return (own,)
        manifest = _sha256(INBOX_PREFIX + self.dropped_name)[:16]
        return (own, f"{MANIFEST_RESULTS_PREFIX}{manifest}/{self.source_key}")

    @property
    def source_key(self) -> str:
        """The object a body case's manifest (and the API's init_image_s3_key cases) names."""
        named = self.body.get("init_image_s3_key")
        if isinstance(named, str):
            return named
        return f"{SOURCE_PREFIX}{self.key or self.name + '.png'}"

    @property
    def metadata_keys(self) -> tuple[str, ...]:
        return tuple(f"{stem}.json" for stem in self.result_stems)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def valid_png() -> bytes:
    return imagegen.png(64, 64)


def valid_base64() -> str:
    return base64.b64encode(valid_png()).decode("ascii")


def api_body(case: Case) -> dict[str, Any]:
    """The JSON body a body case sends to the API: a valid request with the case's changes."""
    body: dict[str, Any] = {"text_prompts": [{"text": PROMPT, "weight": 1.0}], "init_image": valid_base64()}
    if "init_image_s3_key" in case.body:
        del body["init_image"]
    body.update(case.body)
    return {k: v for k, v in body.items() if v is not MISSING}


def manifest_body(case: Case) -> dict[str, Any]:
    """The manifest a body case drops on the S3 door: the same changes, the source by key."""
    body: dict[str, Any] = {
        "text_prompts": [{"text": PROMPT, "weight": 1.0}],
        "init_image_s3_key": case.source_key,
    }
    body.update(case.body)
    return {k: v for k, v in body.items() if v is not MISSING}


# ---------------------------------------------------------------------------------------------
# Images


def _corrupt_jpeg() -> bytes:
    """A JPEG whose frame header declares a width of 0: the markers are right, the picture is not."""
    data = bytearray(imagegen.jpeg(64, 64))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">H", data, sof + 7, 0)
    return bytes(data)


def _corrupt_webp() -> bytes:
    """A RIFF/WEBP container whose VP8 bitstream is noise."""
    good = imagegen.webp(64, 64)
    return good[:30] + imagegen.random_bytes(len(good) - 30, seed=7)


def _nested(depth: int) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for _ in range(depth - 1):
        extras = {"k": extras}
    return extras


def _wide(width: int, height: int) -> Callable[[], bytes]:
    return lambda: imagegen.encode(imagegen.quadrants(width, height), "PNG", compress_level=1)


IMAGE_CASES: tuple[Case, ...] = (
    Case("text_named_png", "image", "text bytes under an image name", unsupported(), image=imagegen.text),
    Case(
        "random_bytes_named_jpg",
        "image",
        "noise under a .jpg name",
        unsupported(),
        image=imagegen.random_bytes,
        extension="jpg",
    ),
    Case("empty_file", "image", "zero bytes", unsupported(), image=lambda: b""),
    Case(
        "truncated_png",
        "image",
        "a PNG cut in half",
        unsupported(),
        image=lambda: imagegen.truncated_corpus((0.5,))["png-50%"],
    ),
    Case(
        "truncated_jpeg",
        "image",
        "a JPEG cut in half",
        unsupported(),
        image=lambda: imagegen.truncated_corpus((0.5,))["jpeg-50%"],
        extension="jpg",
        found_by_decoding=True,
    ),
    Case(
        "truncated_webp",
        "image",
        "a WebP cut in half",
        unsupported(),
        image=lambda: imagegen.truncated_corpus((0.5,))["webp-50%"],
        extension="webp",
    ),
    Case(
        "corrupt_png_crc",
        "image",
        "a PNG whose IDAT checksum is wrong",
        unsupported(),
        image=imagegen.png_bad_crc,
    ),
    Case("corrupt_jpeg_zero_width", "image", "a JPEG frame of width 0", unsupported(), image=_corrupt_jpeg),
    Case(
        "corrupt_webp_noise",
        "image",
        "a WebP whose bitstream is noise",
        unsupported(),
        image=_corrupt_webp,
        found_by_decoding=True,
    ),
    Case("png_bomb", "image", "a PNG declaring 100000x100000 pixels", too_large(), image=imagegen.png_bomb),
    Case(
        "jpeg_bomb",
        "image",
        "a JPEG declaring 65000x65000 pixels",
        too_large(),
        image=imagegen.jpeg_bomb,
        extension="jpg",
    ),
    Case(
        "webp_bomb",
        "image",
        "a WebP declaring a 16383x16383 canvas",
        too_large(),
        image=imagegen.webp_bomb,
        extension="webp",
    ),
    Case(
        "one_pixel",
        "image",
        "a 1x1 PNG: under the 64 px side Stability documents",
        invalid("init_image"),
        image=imagegen.tiny,
    ),
    Case(
        "side_63",
        "image",
        "63 pixels high: one under the 64 px side Stability documents",
        invalid("init_image"),
        image=_wide(640, 63),
    ),
    Case(
        "repeated_jpeg_scans",
        "image",
        "a 60 KB progressive JPEG whose last scan repeats 400 times: minutes of decoding",
        too_large(),
        image=imagegen.many_scans_jpeg,
        extension="jpg",
    ),
    Case(
        "wide_20000x10",
        "image",
        "20000 pixels wide, 2000:1: nothing left of it at an SDXL size",
        invalid("init_image"),
        image=_wide(20000, 10),
    ),
    Case(
        "wide_20000x1000",
        "image",
        "20000 pixels wide at 20:1: fitted to 1536x640",
        ACCEPTED,
        image=_wide(20000, 1000),
    ),
    Case(
        "animated_gif", "image", "three frames", unsupported(), image=imagegen.animated_gif, extension="gif"
    ),
    Case(
        "animated_webp",
        "image",
        "three frames",
        unsupported(),
        image=imagegen.animated_webp,
        extension="webp",
    ),
    Case("animated_png", "image", "an APNG of three frames", unsupported(), image=imagegen.apng),
    Case(
        "cmyk_jpeg",
        "image",
        "print CMYK: converted to sRGB",
        ACCEPTED,
        image=imagegen.cmyk_jpeg,
        extension="jpg",
    ),
    Case(
        "grey_png_16bit", "image", "16-bit greyscale: scaled to 8 bits", ACCEPTED, image=imagegen.grey_png16
    ),
    Case("rgb_png_16bit", "image", "16 bits per channel: scaled to 8", ACCEPTED, image=imagegen.rgb_png16),
    Case(
        "exif_rotated_jpeg",
        "image",
        "stored sideways, EXIF orientation 6: turned upright",
        ACCEPTED,
        image=lambda: imagegen.oriented_jpeg(6),
        extension="jpg",
    ),
    Case(
        "exif_mirrored_webp",
        "image",
        "EXIF orientation 5 in a WebP",
        ACCEPTED,
        image=lambda: imagegen.oriented(5, fmt="WEBP"),
        extension="webp",
    ),
    Case("gif", "image", "a still GIF", unsupported(), image=imagegen.gif, extension="gif"),
    Case("tiff", "image", "a TIFF", unsupported(), image=imagegen.tiff, extension="tiff"),
    Case("bmp", "image", "a BMP", unsupported(), image=imagegen.bmp, extension="bmp"),
    Case(
        "svg",
        "image",
        "an SVG (scripts and external references included)",
        unsupported(),
        image=imagegen.svg,
        extension="svg",
    ),
    Case(
        "heic", "image", "an iPhone HEIC header", unsupported(), image=imagegen.heic_header, extension="heic"
    ),
    Case("pdf_named_png", "image", "a PDF under an image name", unsupported(), image=imagegen.pdf),
)


# ---------------------------------------------------------------------------------------------
# Wrong JSON types, one per field of the contract

_WRONG_TYPES: dict[str, Any] = {
    "text_prompts": "a lighthouse",
    "init_image": 12,
    "init_image_s3_key": 5,
    "init_image_mode": 1,
    "image_strength": "0.5",
    "step_schedule_start": [0.5],
    "step_schedule_end": {"v": 0.5},
    "cfg_scale": "7",
    "clip_guidance_preset": 3,
    "sampler": ["K_EULER"],
    "samples": "1",
    "seed": 1.5,
    "steps": True,
    "style_preset": 7,
    "extras": ["not", "an", "object"],
    "model_id": 42,
    "resize_mode": False,
    "output_format": None,
}
assert set(_WRONG_TYPES) == set(ImageToImageRequest.model_fields), (
    "a field of the contract has no wrong-type case"
)


def _wrong_type_cases() -> Iterator[Case]:
    for name, value in _WRONG_TYPES.items():
        changes: dict[str, Any] = {name: value}
        if name.startswith("step_schedule"):
            changes["init_image_mode"] = "STEP_SCHEDULE"
        yield Case(f"wrong_type_{name}", "body", f"{name}: {json.dumps(value)}", invalid(name), body=changes)
    yield Case(
        "wrong_type_prompt_text",
        "body",
        "a prompt's text is a number",
        invalid("text_prompts.0.text"),
        body={"text_prompts": [{"text": 5, "weight": 1.0}]},
    )
    yield Case(
        "wrong_type_prompt_weight",
        "body",
        "a prompt's weight is a string",
        invalid("text_prompts.0.weight"),
        body={"text_prompts": [{"text": PROMPT, "weight": "1"}]},
    )
    yield Case(
        "wrong_type_prompt_item",
        "body",
        "a prompt that is a string, not an object",
        invalid("text_prompts.0"),
        body={"text_prompts": [PROMPT]},
    )


# ---------------------------------------------------------------------------------------------
# Range edges: just in (accepted, one model call) and just out (400 naming the field)

_STEP = {"init_image_mode": "STEP_SCHEDULE"}
_RANGES: tuple[tuple[str, Any, Any, Any, Any, dict[str, Any]], ...] = (
    # field, lowest in, highest in, just below, just above, other fields it needs
    ("cfg_scale", 0, 35, -0.01, 35.01, {}),
    ("steps", 10, 50, 9, 51, {}),
    ("seed", 0, MAX_SEED, -1, MAX_SEED + 1, {}),
    ("image_strength", 0.0, 1.0, -0.01, 1.01, {}),
    ("step_schedule_start", 0.0, 1.0, -0.01, 1.01, _STEP),
    ("step_schedule_end", 0.65, 1.0, -0.01, 1.01, _STEP),  # at least the start's default, 0.65
)


def _range_cases() -> Iterator[Case]:
    for name, low, high, below, above, needs in _RANGES:
        yield Case(f"{name}_lowest", "body", f"{name} = {low}", ACCEPTED, body={**needs, name: low})
        yield Case(f"{name}_highest", "body", f"{name} = {high}", ACCEPTED, body={**needs, name: high})
        yield Case(f"{name}_below", "body", f"{name} = {below}", invalid(name), body={**needs, name: below})
        yield Case(f"{name}_above", "body", f"{name} = {above}", invalid(name), body={**needs, name: above})
    yield Case(
        "prompt_2000_chars",
        "body",
        "the longest prompt SDXL takes",
        ACCEPTED,
        body={"text_prompts": [{"text": "a" * 2000, "weight": 1.0}]},
    )
    yield Case(
        "prompt_2001_chars",
        "body",
        "one character over",
        invalid("text_prompts.0.text"),
        body={"text_prompts": [{"text": "a" * 2001, "weight": 1.0}]},
    )
    yield Case(
        "prompt_10000_chars",
        "body",
        "SD3.5's limit, not SDXL's",
        invalid("text_prompts.0.text"),
        body={"text_prompts": [{"text": "a" * 10000, "weight": 1.0}]},
    )
    yield Case(
        "step_schedule_end_before_start",
        "body",
        "end 0.5 < start 0.8",
        invalid("step_schedule_end"),
        body={**_STEP, "step_schedule_start": 0.8, "step_schedule_end": 0.5},
    )


# ---------------------------------------------------------------------------------------------
# Other rules of the contract

RULE_CASES: tuple[Case, ...] = (
    Case("unknown_field", "body", "a typo'd field", invalid("colour"), body={"colour": "red"}),
    Case(
        "unknown_prompt_field",
        "body",
        "an unknown field inside a prompt",
        invalid("text_prompts.0.emphasis"),
        body={"text_prompts": [{"text": PROMPT, "emphasis": 2}]},
    ),
    Case(
        "only_negative_prompts",
        "body",
        "nothing to steer towards",
        invalid("text_prompts"),
        body={"text_prompts": [{"text": "blurry", "weight": -1.0}, {"text": "dark", "weight": -0.5}]},
    ),
    Case("no_prompts", "body", "an empty list", invalid("text_prompts"), body={"text_prompts": []}),
    Case("samples_2", "body", "Bedrock makes one image", invalid("samples"), body={"samples": 2}),
    Case(
        "clip_guidance_without_ancestral_sampler",
        "body",
        "CLIP guidance needs K_*_ANCESTRAL",
        invalid("clip_guidance_preset"),
        body={"clip_guidance_preset": "SLOW", "sampler": "K_EULER"},
    ),
    Case(
        "strength_in_step_schedule_mode",
        "body",
        "image_strength belongs to IMAGE_STRENGTH mode",
        invalid("image_strength"),
        body={**_STEP, "image_strength": 0.5},
    ),
    Case(
        "model_not_allowed",
        "body",
        "a model this environment does not enable",
        invalid("model_id"),
        body={"model_id": "stability.sd3-5-medium-v1:0"},
    ),
    Case(
        "too_many_prompts",
        "body",
        "21 prompts: more than the 20 a request may carry",
        invalid("text_prompts"),
        body={"text_prompts": [{"text": "a fox"}] * 21},
    ),
    Case(
        "extras_too_large",
        "body",
        "extras of 9 KB of JSON: more than the 8192 bytes a request may carry",
        invalid("extras"),
        body={"extras": {"note": "x" * 9000}},
    ),
    Case(
        "extras_too_deep",
        "body",
        "extras nested 250 levels: deeper than a job record can hold",
        invalid("extras"),
        body={"extras": _nested(250)},
    ),
    Case(
        "prompt_invisible",
        "body",
        "a prompt of zero-width spaces and a direction mark: nothing to show",
        invalid("text_prompts"),
        body={"text_prompts": [{"text": "\u200b\u200b\u202e"}]},
    ),
    Case(
        "extras_at_the_cap",
        "body",
        "extras of just under 8192 bytes: accepted (and noted as dropped by the model)",
        ACCEPTED,
        body={"extras": {"note": "x" * 8000}},
    ),
    Case(
        "model_retired",
        "body",
        "a model Bedrock retired (SDXL 1.0): its end-of-life date and the successor, no call",
        Expect(503, "model_unavailable", "model_id", 0),
        body={"model_id": "stability.stable-diffusion-xl-v1"},
    ),
    Case(
        "model_retired_profile",
        "body",
        "a retired model behind an inference profile (Nova Canvas)",
        Expect(503, "model_unavailable", "model_id", 0),
        body={"model_id": "us.amazon.nova-canvas-v1:0"},
    ),
    Case(
        "unknown_style_preset",
        "body",
        "not one of the 17 presets",
        invalid("style_preset"),
        body={"style_preset": "watercolour"},
    ),
    Case(
        "init_image_not_base64",
        "body",
        "init_image with characters outside base64",
        invalid("init_image"),
        body={"init_image": "data:image/png;base64,%%%"},
        doors=API_ONLY,  # a manifest names its source by key
    ),
    Case(
        "no_source",
        "body",
        "neither init_image nor init_image_s3_key",
        invalid("init_image"),
        body={"init_image": MISSING},
        doors=API_ONLY,
    ),
    Case(
        "manifest_names_no_image",
        "body",
        "a manifest with parameters but no source",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": MISSING},
        doors=S3_ONLY,
    ),
)


# ---------------------------------------------------------------------------------------------
# init_image_s3_key: only a key in the input bucket, and one that exists

KEY_CASES: tuple[Case, ...] = (
    Case(
        "s3_key_dot_dot",
        "body",
        "climbs out of its prefix",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": "uploads/../inbox/corpus/x.png"},
    ),
    Case(
        "s3_key_absolute",
        "body",
        "an absolute path",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": "/etc/passwd"},
    ),
    Case(
        "s3_key_other_bucket_uri",
        "body",
        "another bucket's URI",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": "s3://someone-elses-bucket/photo.png"},
    ),
    Case(
        "s3_key_bucket_arn",
        "body",
        "an object ARN",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": "arn:aws:s3:::someone-elses-bucket/photo.png"},
    ),
    Case(
        "s3_key_missing",
        "body",
        "a key that does not exist (S3 door: a manifest naming a missing image)",
        Expect(400, "source_not_found", "init_image_s3_key", 0),
        body={"init_image_s3_key": f"{SOURCE_PREFIX}s3_key_missing.png"},
        upload_source=False,
    ),
    Case(
        "s3_key_too_long",
        "body",
        "1025 characters: longer than any S3 key",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": "uploads/" + "k" * 1017},
    ),
    Case(
        "s3_key_another_callers_upload",
        "body",
        "another caller's upload, which exists: refused as if it did not",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": f"{OTHER_CALLERS_PREFIX}theirs.png"},
    ),
    Case(
        "s3_key_inbox_through_the_api",
        "body",
        "an image dropped under inbox/: the dropper's, not runnable through the API",
        invalid("init_image_s3_key"),
        doors=API_ONLY,
        body={"init_image_s3_key": f"{INBOX_PREFIX}someone.png"},
    ),
    Case(
        "s3_key_another_jobs_inline_source",
        "body",
        "where another job stored its inline source (api/<job id>/)",
        invalid("init_image_s3_key"),
        body={"init_image_s3_key": f"api/{'0' * 32}/source.png"},
    ),
    Case("key_with_spaces", "key", "spaces ('+' in S3 events)", ACCEPTED, key="a photo of me.png"),
    Case("key_with_unicode", "key", "non-ASCII name", ACCEPTED, key="été-写真-😀.png"),
    Case("key_with_plus", "key", "a literal '+', not a space", ACCEPTED, key="1+1=2.png"),
    Case(
        "dropped_key_too_long",
        "key",
        "a dropped key S3 takes (1,023 bytes) whose result keys would pass its 1,024",
        invalid("init_image_s3_key"),
        key="k" * 1006 + ".png",
        doors=S3_ONLY,
    ),
)


# ---------------------------------------------------------------------------------------------
# Raw bodies and manifests


def _over(limit: int) -> Callable[[], bytes]:
    """A JSON request of more than `limit` bytes: an inline image too big for the API."""

    def make() -> bytes:
        body = {"text_prompts": [{"text": PROMPT}], "init_image": "A" * limit}
        return json.dumps(body).encode()

    return make


RAW_CASES: tuple[Case, ...] = (
    Case(
        "body_not_json",
        "raw",
        "plain text",
        invalid("body"),
        raw=lambda: b"a lighthouse, please",
        s3_expect=invalid("manifest"),
    ),
    Case(
        "body_json_array",
        "raw",
        "a JSON array, not an object",
        invalid("body"),
        raw=lambda: b"[1, 2, 3]",
        s3_expect=invalid("manifest"),
    ),
    Case(
        "body_deeply_nested",
        "raw",
        "100000 nested arrays: a parser's recursion limit",
        invalid("body"),
        raw=lambda: b"[" * 100_000 + b"]" * 100_000,
        s3_expect=invalid("manifest"),
    ),
    Case(
        "manifest_invalid_utf8",
        "raw",
        "manifest bytes that are not UTF-8",
        invalid("manifest"),
        raw=lambda: b'{"text_prompts": [{"text": "\xff\xfe"}]}',
        doors=S3_ONLY,
    ),
    Case(
        "weight_infinity",
        "raw",
        "a non-finite weight (Python's JSON reads Infinity)",
        invalid("text_prompts.0.weight"),
        raw=lambda: _raw_with_source(b'"text_prompts": [{"text": "x", "weight": Infinity}]'),
        manifest_raw=lambda key: _raw_with_key(b'"text_prompts": [{"text": "x", "weight": Infinity}]', key),
    ),
    Case(
        "weight_nan",
        "raw",
        "NaN next to a valid prompt",
        invalid("text_prompts.0.weight"),
        raw=lambda: _raw_with_source(b'"text_prompts": [{"text": "x", "weight": NaN}, {"text": "y"}]'),
        manifest_raw=lambda key: _raw_with_key(
            b'"text_prompts": [{"text": "x", "weight": NaN}, {"text": "y"}]', key
        ),
    ),
    Case(
        "body_over_6_mb",
        "raw",
        "over Lambda's 6 MB synchronous payload",
        Expect(413, "payload_too_large", None, 0),
        raw=_over(7 * 1024 * 1024),
        doors=API_ONLY,
    ),
    Case(
        "body_over_10_mb",
        "raw",
        "over API Gateway's 10 MB payload",
        Expect(413, "payload_too_large", None, 0),
        raw=_over(11 * 1024 * 1024),
        doors=API_ONLY,
    ),
    Case(
        "manifest_over_1_mb",
        "raw",
        "a manifest past the 1 MB manifest cap",
        Expect(413, "payload_too_large", "manifest", 0),
        raw=lambda: json.dumps(
            {"text_prompts": [{"text": PROMPT}], "extras": {"x": "a" * 1_100_000}}
        ).encode(),
        doors=S3_ONLY,
    ),
    Case(
        "manifest_over_count",
        "raw",
        "a manifest naming one image more than the 1,000 a manifest may",
        invalid("init_image_s3_keys"),
        raw=lambda: json.dumps(
            {
                "text_prompts": [{"text": PROMPT}],
                "init_image_s3_keys": [f"{SOURCE_PREFIX}{n}.png" for n in range(MAX_MANIFEST_IMAGES + 1)],
            }
        ).encode(),
        doors=S3_ONLY,
    ),
    Case(
        "manifest_keys_not_a_list",
        "raw",
        "init_image_s3_keys as a string",
        invalid("init_image_s3_keys"),
        raw=lambda: json.dumps({"text_prompts": [{"text": PROMPT}], "init_image_s3_keys": "a.png"}).encode(),
        doors=S3_ONLY,
    ),
    Case(
        "body_as_text_plain",
        "raw",
        "a valid JSON body sent as text/plain",
        Expect(415, "unsupported_media_type", None, 0),
        raw=lambda: json.dumps({"text_prompts": [{"text": PROMPT}], "init_image": valid_base64()}).encode(),
        content_type="text/plain",
        doors=API_ONLY,
    ),
    Case(
        "body_as_curl_form",
        "raw",
        "curl --data @request.json: curl's default application/x-www-form-urlencoded",
        Expect(415, "unsupported_media_type", None, 0),
        raw=lambda: json.dumps({"text_prompts": [{"text": PROMPT}], "init_image": valid_base64()}).encode(),
        content_type="application/x-www-form-urlencoded",
        doors=API_ONLY,
    ),
    Case(
        "body_as_multipart_form",
        "raw",
        "a multipart form",
        Expect(415, "unsupported_media_type", None, 0),
        raw=lambda: b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
        content_type="multipart/form-data; boundary=b",
        doors=API_ONLY,
    ),
    Case(
        "body_without_content_type",
        "raw",
        "a JSON body with no Content-Type header",
        Expect(415, "unsupported_media_type", None, 0),
        raw=lambda: json.dumps({"text_prompts": [{"text": PROMPT}], "init_image": valid_base64()}).encode(),
        content_type=None,
        doors=API_ONLY,
    ),
    Case(
        "content_type_in_capitals",
        "raw",
        "Application/JSON; charset=UTF-8: media types are case-insensitive",
        ACCEPTED,
        raw=lambda: json.dumps({"text_prompts": [{"text": PROMPT}], "init_image": valid_base64()}).encode(),
        content_type="Application/JSON; charset=UTF-8",
        doors=API_ONLY,
    ),
)


def _raw_with_source(prompts: bytes) -> bytes:
    """A JSON object with `prompts` and a valid inline source."""
    return b"{" + prompts + b', "init_image": "' + valid_base64().encode() + b'"}'


def _raw_with_key(prompts: bytes, key: str) -> bytes:
    """A manifest with `prompts`, naming a valid source by key."""
    return b"{" + prompts + b', "init_image_s3_key": ' + json.dumps(key).encode() + b"}"


# ---------------------------------------------------------------------------------------------
# The S3 door's own input: metadata on a dropped image

METADATA_CASES: tuple[Case, ...] = (
    Case(
        "metadata_seed_not_a_number",
        "metadata",
        "seed 'forty-two'",
        invalid("x-amz-meta-seed"),
        metadata={"prompt": PROMPT, "seed": "forty-two"},
        doors=S3_ONLY,
    ),
    Case(
        "metadata_cfg_scale_not_a_number",
        "metadata",
        "cfg-scale 'high'",
        invalid("x-amz-meta-cfg-scale"),
        metadata={"prompt": PROMPT, "cfg-scale": "high"},
        doors=S3_ONLY,
    ),
    Case(
        "metadata_steps_fraction",
        "metadata",
        "steps '30.5' is not a whole number",
        invalid("x-amz-meta-steps"),
        metadata={"prompt": PROMPT, "steps": "30.5"},
        doors=S3_ONLY,
    ),
    Case(
        "metadata_strength_nan",
        "metadata",
        "image-strength 'nan' parses as a float but is no strength",
        invalid("x-amz-meta-image-strength"),
        metadata={"prompt": PROMPT, "image-strength": "nan"},
        doors=S3_ONLY,
    ),
    Case(
        "metadata_no_prompt",
        "metadata",
        "an image with neither a manifest nor a prompt",
        Expect(400, "missing_parameters", "x-amz-meta-prompt", 0),
        metadata={"seed": "1"},
        doors=S3_ONLY,
    ),
    Case(
        "metadata_unknown_charset",
        "metadata",
        "an RFC 2047 prompt in a charset that does not exist",
        invalid("x-amz-meta-prompt"),
        metadata={"prompt": "=?x-no-such-charset?B?YQ==?="},
        doors=S3_ONLY,
    ),
    Case(
        "metadata_bad_utf8",
        "metadata",
        "an RFC 2047 prompt whose bytes are not UTF-8",
        invalid("x-amz-meta-prompt"),
        metadata={"prompt": "=?utf-8?B?/w==?="},
        doors=S3_ONLY,
    ),
)


CASES: tuple[Case, ...] = (
    *IMAGE_CASES,
    *_wrong_type_cases(),
    *_range_cases(),
    *RULE_CASES,
    *KEY_CASES,
    *RAW_CASES,
    *METADATA_CASES,
)

_names = [case.name for case in CASES]
assert len(_names) == len(set(_names)), "case names must be unique"


def cases_for(door: Door) -> list[Case]:
    return [case for case in CASES if door in case.doors]


def by_name(name: str) -> Case:
    return next(case for case in CASES if case.name == name)
