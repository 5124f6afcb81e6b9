"""Properties of the service's input handling, checked by hypothesis over generated inputs
(tests/unit/test_request.py has the contract's rules case by case; these are the laws):

- whatever JSON arrives, parse_request answers a request or InvalidRequest naming fields,
  and an accepted request is strict JSON the model can be sent (no NaN, no Infinity);
- every body the contract allows parses, round-trips, and means one image strength;
- an accepted init_image_s3_key stays inside the input bucket's source prefixes;
- S3 object metadata and manifests, whatever their bytes, become bodies or domain errors,
  never a crash (a crash is retried three times, then dead-lettered, with no FAILED metadata);
- S3 keys survive the event encoding, and results land under results/ at a stable place;
- prepare_image, on any bytes or any damaged image, answers a prepared PNG or a domain error;
- the API handler answers any JSON body without a 5xx (the in-memory ports behind it, whose
  errors are their adapters', tests/contracts.py)."""

from __future__ import annotations

import base64
import json
import math
import os
import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from img2img.domain import s3_door
from img2img.domain.errors import InvalidRequest, ServiceError
from img2img.domain.imaging import ImageLimits, prepare_image
from img2img.domain.request import (
    MAX_SEED,
    SOURCE_PREFIXES,
    ImageToImageRequest,
    ResizeMode,
    parse_request,
    visible,
)
from tests import imagegen
from tests.fakes import House, memory_service
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.sqs_events import s3_notification
from tests.unit.test_queue_messages import objects_of

pytestmark = pytest.mark.unit

# `make stress` raises the number of examples (IMG2IMG_PROPERTY_EXAMPLES to mk/hardening.mk's
# STRESS_PROPERTY_EXAMPLES); `make test` keeps it short.
EXAMPLES = int(os.environ.get("IMG2IMG_PROPERTY_EXAMPLES", "200"))
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=EXAMPLES)

# JSON as Python's json module reads it: NaN and Infinity included (json.loads accepts them).
json_scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = sorted(ImageToImageRequest.model_fields)


def _prompt_like() -> st.SearchStrategy[Any]:
    return st.lists(
        st.fixed_dictionaries({"text": st.text(max_size=40)}, optional={"weight": json_scalars}),
        min_size=0,
        max_size=3,
    )


bodies = st.fixed_dictionaries(
    {},
    optional={
        **{name: json_values for name in FIELDS},
        "text_prompts": _prompt_like() | json_values,
        "init_image": st.just("aGVsbG8=") | json_values,
        "init_image_s3_key": st.sampled_from(["uploads/a.png", "inbox/x/y.jpg", "../a.png"]) | json_values,
    },
)


# --- the request contract ---------------------------------------------------------------------


@FAST
@given(bodies)
@example({"text_prompts": [{"text": "x", "weight": math.inf}], "init_image": "aGVsbG8="})
@example({"text_prompts": [{"text": "x", "weight": math.nan}, {"text": "y"}], "init_image": "aGVsbG8="})
@example({"text_prompts": [{"text": "x"}], "init_image": "aGVsbG8=", "extras": {"k": math.inf}})
def test_any_body_is_a_request_or_names_its_bad_fields(data: dict[str, Any]) -> None:
    try:
        request = parse_request(data)
    except InvalidRequest as error:
        assert error.details and all(d.field and d.message for d in error.details)
        known = {*FIELDS, "body"}
        for detail in error.details:
            head = detail.field.split(".")[0]
            assert head in known or head in data, detail
        return
    # What an engine sends Bedrock is strict JSON: a non-finite number would reach the model
    # as a token no JSON parser but Python's accepts, and be paid for as a failed call.
    json.dumps(request.bedrock_fields(), allow_nan=False)
    assert request.samples == 1 and request.positive_prompts


prompt = st.fixed_dictionaries(
    {"text": st.text(max_size=2000)},
    optional={"weight": st.floats(-5, 5, allow_nan=False, allow_infinity=False)},
)
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    prompts = draw(st.lists(prompt, min_size=0, max_size=3))
    prompts.insert(
        draw(st.integers(0, len(prompts))),
        {"text": draw(st.text(min_size=1, max_size=100).filter(visible)), "weight": 1.0},
    )
    body: dict[str, Any] = {"text_prompts": prompts}
    if draw(st.booleans()):
        body["init_image"] = "aGVsbG8="
    else:
        prefix = draw(st.sampled_from(SOURCE_PREFIXES))
        name = draw(st.from_regex(r"[A-Za-z0-9 _+=é-]{1,20}\.(png|jpg|webp)", fullmatch=True))
        body["init_image_s3_key"] = prefix + name
    if draw(st.booleans()):
        body["init_image_mode"] = "STEP_SCHEDULE"
        start = draw(st.none() | unit)
        if start is not None:
            body["step_schedule_start"] = start
        if draw(st.booleans()):
            body["step_schedule_end"] = draw(st.floats(start if start is not None else 0.65, 1))
    elif draw(st.booleans()):
        body["image_strength"] = draw(unit)
    optional = {
        "cfg_scale": st.floats(0, 35, allow_nan=False),
        "seed": st.integers(0, MAX_SEED),
        "steps": st.integers(10, 50),
        "style_preset": st.sampled_from(["anime", "animé", "photographic", "pixel-art", "3d-model"]),
        "sampler": st.sampled_from(["K_EULER_ANCESTRAL", "DDIM", "K_DPMPP_2M"]),
        "samples": st.just(1),
        "extras": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        "resize_mode": st.sampled_from(["fit", "pad", "reject"]),
        "output_format": st.sampled_from(["png", "jpeg", "webp"]),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    if body.get("sampler", "").endswith("_ANCESTRAL") and draw(st.booleans()):
        body["clip_guidance_preset"] = draw(st.sampled_from(["FAST_BLUE", "SLOW", "NONE"]))
    return body


@FAST
@given(valid_bodies())
def test_every_body_the_contract_allows_parses_and_round_trips(data: dict[str, Any]) -> None:
    request = parse_request(data)
    again = parse_request(json.loads(json.dumps(request.model_dump(exclude_none=True))))
    assert again == request
    strength = request.effective_image_strength
    assert 0 <= strength <= 1
    if request.init_image_mode == "STEP_SCHEDULE":
        assert strength == pytest.approx(1 - request.effective_step_schedule_start)
    assert request.positive_prompts and len(request.positive_prompts) + len(request.negative_prompts) <= len(
        request.text_prompts
    )


@FAST
@given(st.text(min_size=1, max_size=80))
@example("uploads/../../etc/passwd")
@example("inbox/./a.png")
@example("uploads/a/../../b.png")
def test_an_accepted_source_key_stays_inside_the_source_prefixes(key: str) -> None:
    try:
        request = parse_request({"text_prompts": [{"text": "x"}], "init_image_s3_key": key})
    except InvalidRequest as error:
        assert [d.field for d in error.details] == ["init_image_s3_key"]
        return
    accepted = request.init_image_s3_key
    assert accepted is not None and accepted.startswith(SOURCE_PREFIXES)
    assert ".." not in accepted.split("/") and "://" not in accepted
    assert posixpath.normpath(accepted) == accepted.rstrip("/")


# --- the S3 door's inputs ----------------------------------------------------------------------

encoded_words = st.builds(
    lambda charset, enc, payload: f"=?{charset}?{enc}?{payload}?=",
    st.sampled_from(["utf-8", "UTF-8", "latin-1", "iso-8859-1", "x-no-such-charset", "utf-16"]),
    st.sampled_from(["B", "Q", "b"]),
    st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=12),
)
meta_values = st.text(max_size=40) | encoded_words
meta_names = st.sampled_from(
    ["prompt", "negative-prompt", "seed", "cfg-scale", "steps", "image-strength", "style-preset", "model-id"]
) | st.text(min_size=1, max_size=10)


@FAST
@given(st.dictionaries(meta_names, meta_values, max_size=6))
@example({"prompt": "=?x-no-such-charset?B?YQ==?="})
@example({"prompt": "=?utf-8?B?/w==?="})
def test_any_object_metadata_is_a_body_or_a_domain_error(metadata: dict[str, str]) -> None:
    try:
        body = s3_door.request_from_metadata(metadata)
    except ServiceError as error:
        assert error.status == 400 and error.details
        assert all(d.field.startswith("x-amz-meta-") for d in error.details)
        return
    assert body["text_prompts"][0]["weight"] == 1.0 and body["text_prompts"][0]["text"].strip()
    json.dumps(body, allow_nan=True)


nested = st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth)


@FAST
@given(
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(st.sampled_from(["init_image_s3_keys", "init_image_s3_key", *FIELDS]), json_values).map(
        lambda d: json.dumps(d).encode()
    )
    | nested
)
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
def test_any_manifest_bytes_are_bodies_or_a_domain_error(raw: bytes) -> None:
    try:
        found = s3_door.manifest_requests(raw, 1000)
    except ServiceError as error:
        assert error.status == 400 and error.details
        return
    assert found and all(isinstance(body, dict) for body in found)


s3_keys = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=60
).filter(lambda k: not k.endswith("/"))


@FAST
@given(s3_keys)
@example("inbox/my cat été+1.png")
@example("inbox/a%2Fb.png")
def test_keys_survive_the_event_encoding_both_ways(name: str) -> None:
    key = f"inbox/{name}"
    for encoded in (quote_plus(key), quote_plus(key, safe="/")):  # moto's and S3's encodings
        event = s3_notification("in", key)
        event["Records"][0]["s3"]["object"]["key"] = encoded
        [obj] = objects_of(event)
        assert obj.key == key


@FAST
@given(s3_keys)
def test_results_land_under_results_at_one_place_per_source(name: str) -> None:
    key = f"inbox/{name}"
    out = s3_door.output_keys("out", key)
    assert out.metadata_key.startswith("results/") and out.metadata_key.endswith(".json")
    assert out.image_key(".png").startswith("results/")
    assert out == s3_door.output_keys("out", key)  # a redelivery writes over, never beside
    source = s3_door.SourceObject("in", key, "v1", "etag")
    body = {"text_prompts": [{"text": "x", "weight": 1.0}]}
    assert s3_door.job_id_for(source, body) == s3_door.job_id_for(source, json.loads(json.dumps(body)))


# --- images ------------------------------------------------------------------------------------

SMALL = ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000, max_webp_pixels=4_000_000)
SEEDS = {
    "png": imagegen.png(48, 32, noise=40),
    "jpeg": imagegen.jpeg(48, 32),
    "webp": imagegen.webp(48, 32),
    "webp-lossless": imagegen.webp(48, 32, lossless=True),
    "png-16": imagegen.rgb_png16(16, 16),
    "jpeg-exif": imagegen.oriented_jpeg(6, 32, 24),
}


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            value = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(value)] = value
    return bytes(data)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=EXAMPLES * 3 // 2)
@given(damaged_images() | st.binary(max_size=256), st.sampled_from(["fit", "pad", "reject"]))
def test_prepare_image_answers_a_png_or_a_domain_error(data: bytes, resize_mode: ResizeMode) -> None:
    try:
        prepared = prepare_image(data, resize_mode, SMALL)
    except ServiceError as error:
        assert 400 <= error.status < 500 and error.details
        return
    assert prepared.png.startswith(imagegen.PNG_SIGNATURE)
    assert (prepared.width, prepared.height) in {
        (1024, 1024), (1152, 896), (1216, 832), (1344, 768), (1536, 640),
        (640, 1536), (768, 1344), (832, 1216), (896, 1152),
    }  # fmt: skip


# --- the API handler ---------------------------------------------------------------------------


@pytest.fixture
def api_over_memory(aws_env: None) -> Iterator[House]:
    """The real API handler (event parsing, validation, Powertools) with the domain over the
    in-memory ports behind it, installed where handlers/wiring.py would build the service."""
    from img2img.config import Settings
    from img2img.handlers import wiring

    wiring.reset()
    service, house = memory_service(Settings.from_environment())
    wiring.install(service, sync=True)
    yield house
    wiring.reset()


@settings(
    deadline=None,
    max_examples=max(60, EXAMPLES // 10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=bodies, path=st.sampled_from(["/v1/image-to-image", "/v1/jobs", "/v1/uploads"]))
def test_the_api_answers_any_json_body_without_a_5xx(
    api_over_memory: House, data: dict[str, Any], path: str
) -> None:
    from img2img.handlers import api

    try:
        raw = json.dumps(data)
    except ValueError:
        assume(False)
        return
    response = api.handler(api_event("POST", path, raw_body=raw), FakeContext())
    assert response["statusCode"] < 500, response["body"][:500]
    payload = json.loads(response["body"])
    if response["statusCode"] >= 400:
        assert set(payload) - {"job_id", "request_id"} == {"error"}
        assert {"code", "message", "details"} <= set(payload["error"])
