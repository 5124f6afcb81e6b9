"""The Bedrock emulator over loopback HTTP, driven by the real boto3 bedrock-runtime client."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from PIL import Image, ImageChops, ImageDraw, ImageStat

from img2img.catalog import base_model_id
from img2img.domain.imaging import PreparedImage
from img2img.domain.request import parse_request
from img2img.engines import engine_for, supported_model_ids
from img2img_local.bedrock_emulator import EmulatorFaults, EmulatorHandle, start_emulator

pytestmark = pytest.mark.local

SDXL = "stability.stable-diffusion-xl-v1"  # retired: answers end of life, as on AWS
SD3 = "stability.sd3-5-large-v1:0"
ULTRA = "stability.stable-image-ultra-v1:1"
STRUCTURE = "us.stability.stable-image-control-structure-v1:0"
SKETCH = "us.stability.stable-image-control-sketch-v1:0"
GUIDE = "us.stability.stable-image-style-guide-v1:0"
LIVE = [SD3, ULTRA, STRUCTURE, SKETCH, GUIDE]


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    handle = start_emulator(environ={})
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean_state(emulator: EmulatorHandle) -> None:
    emulator.emulator.reset()


def make_client(url: str, max_attempts: int = 1) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-west-2",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts}),
    )


@pytest.fixture
def client(emulator: EmulatorHandle) -> Any:
    return make_client(emulator.url)


def scene(width: int, height: int) -> Image.Image:
    """A source with structure, so that closeness to it can be measured."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(230, 40, 40))
    draw.rectangle((width // 2, height // 2, width - 20, height - 20), fill=(30, 90, 220))
    return image


def encoded(image: Image.Image, image_format: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


SOURCE = scene(1024, 1024)
SOURCE_B64 = encoded(SOURCE)


def sd3_body(**fields: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", "mode": "image-to-image", "image": SOURCE_B64, "strength": 0.6}
    return {**body, "seed": 7, "output_format": "png", **fields}


def ultra_body(**fields: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", "image": SOURCE_B64, "strength": 0.6}
    return {**body, "seed": 7, "output_format": "png", **fields}


def control_body(**fields: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", "image": SOURCE_B64, "control_strength": 0.4}
    return {**body, "seed": 7, "output_format": "png", **fields}


def guide_body(**fields: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", "image": SOURCE_B64, "fidelity": 0.4}
    return {**body, "seed": 7, "output_format": "png", **fields}


BODIES: dict[str, Callable[..., dict[str, Any]]] = {
    SD3: sd3_body,
    ULTRA: ultra_body,
    STRUCTURE: control_body,
    SKETCH: control_body,
    GUIDE: guide_body,
}


def invoke(client: Any, model_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    response = client.invoke_model(
        modelId=model_id, body=json.dumps(body), contentType="application/json", accept="application/json"
    )
    return json.loads(response["body"].read()), response["ResponseMetadata"]["HTTPHeaders"]


def with_seed(model_id: str, body: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**body, "seed": seed}


def first_image(payload: dict[str, Any]) -> bytes:
    return base64.b64decode(payload["images"][0])


def distance(image_bytes: bytes, reference: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255."""
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    return sum(ImageStat.Stat(ImageChops.difference(image, reference)).mean) / 3


def stats(emulator: EmulatorHandle) -> dict[str, Any]:
    response = requests.get(f"{emulator.url}/_emulator/stats", timeout=5)
    response.raise_for_status()
    return response.json()


# --- the wire contract -----------------------------------------------------------------


@pytest.mark.parametrize("model_id", LIVE)
def test_each_model_answers_in_the_documented_shape(client: Any, model_id: str) -> None:
    payload, headers = invoke(client, model_id, BODIES[model_id]())
    assert headers["x-img2img-emulator"] == "true"
    assert headers["content-type"] == "application/json"
    assert (payload["seeds"], payload["finish_reasons"]) == ([7], [None])
    image = Image.open(io.BytesIO(first_image(payload)))
    assert (image.format, image.size) == ("PNG", (1024, 1024))


@pytest.mark.parametrize(
    ("model_id", "base"),
    [
        (f"us.{SD3}", SD3),
        (f"eu.{ULTRA}", ULTRA),
        (f"arn:aws:bedrock:us-west-2::foundation-model/{SD3}", SD3),
        (f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{STRUCTURE}", STRUCTURE),
    ],
)
def test_prefixed_ids_and_arns_are_served_and_counted_as_sent(
    emulator: EmulatorHandle, client: Any, model_id: str, base: str
) -> None:
    invoke(client, model_id, BODIES[base]())
    assert stats(emulator)["by_model"] == {model_id: 1}


def test_the_emulator_serves_exactly_the_engines_models(emulator: EmulatorHandle) -> None:
    models = requests.get(f"{emulator.url}/_emulator/models", timeout=5).json()["models"]
    assert {base_model_id(m) for m in models} == {base_model_id(m) for m in supported_model_ids()}


@pytest.mark.parametrize("model_id", [STRUCTURE, SKETCH, GUIDE])
def test_image_services_answer_only_through_an_inference_profile(
    emulator: EmulatorHandle, client: Any, model_id: str
) -> None:
    with pytest.raises(client.exceptions.ValidationException) as caught:
        invoke(client, base_model_id(model_id), BODIES[model_id]())
    assert "inference profile" in caught.value.response["Error"]["Message"]
    assert stats(emulator)["invocations"] == 0


@pytest.mark.parametrize(
    ("model_id", "size"),
    [
        (SD3, (832, 1216)),
        (ULTRA, (1344, 768)),
        (STRUCTURE, (1536, 640)),
        (SKETCH, (1024, 1024)),
        (GUIDE, (640, 1536)),
    ],
)
def test_engine_bodies_are_accepted_and_their_responses_parse(
    client: Any, model_id: str, size: tuple[int, int]
):
    """The engines and the emulator are written apart, each held to the AWS fixtures; they
    must also agree with each other on every model's body and answer."""
    request = parse_request(
        {
            "text_prompts": [{"text": "a lighthouse", "weight": 1}, {"text": "fog", "weight": -0.5}],
            "init_image_s3_key": "uploads/x.png",
            "cfg_scale": 12,
            "sampler": "K_EULER_ANCESTRAL",
            "clip_guidance_preset": "FAST_GREEN",
            "steps": 20,
            "style_preset": "animé",
            "seed": 4294967295,
            "image_strength": 0.5,
        }
    )
    png = base64.b64decode(encoded(scene(*size)))
    prepared = PreparedImage(png, size[0], size[1], "png", size[0], size[1], "fit", True)
    engine = engine_for(model_id)
    call = engine.build_body(request, prepared)
    payload, _ = invoke(client, model_id, call.body)
    artifact = engine.parse_response(payload, call)
    assert artifact.finish_reason == "SUCCESS"
    assert Image.open(io.BytesIO(artifact.image)).format == "PNG"
    assert artifact.seed > 0


# --- validation ---------------------------------------------------------------------------


def with_image(image: Image.Image, image_format: str = "PNG") -> str:
    return encoded(image, image_format)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    (SD3, sd3_body(strength=1.2), "#/strength"),
    (SD3, sd3_body(strength=None), "#/strength: required"),
    (SD3, sd3_body(seed=4294967295), "#/seed"),
    (SD3, sd3_body(prompt=""), "#/prompt"),
    (SD3, sd3_body(prompt="x" * 10001), "#/prompt"),
    (SD3, sd3_body(mode="text-to-image"), "#/mode"),
    (SD3, sd3_body(aspect_ratio="1:1"), "#/aspect_ratio"),
    (SD3, sd3_body(cfg_scale=7), "#/cfg_scale: extraneous key"),
    (SD3, sd3_body(image=with_image(scene(48, 64))), "#/image: every side must be at least 64"),
    (SD3, sd3_body(image=with_image(scene(1600, 600))), "#/image: aspect ratio"),
    (SD3, sd3_body(image="not base64!"), "#/image: is not valid base64"),
    (SD3, sd3_body(image=None), "#/image: required key not found"),
    (SD3, sd3_body(output_format="gif"), "#/output_format"),
    (ULTRA, ultra_body(mode="image-to-image"), "#/mode: extraneous key"),
    (ULTRA, ultra_body(output_format="webp"), "#/output_format"),
    (ULTRA, ultra_body(seed=4294967296), "#/seed"),
    (ULTRA, ultra_body(image=with_image(scene(3200, 3200))), "#/image: at most 9437184 pixels"),
    (STRUCTURE, control_body(control_strength=1.5), "#/control_strength"),
    (STRUCTURE, control_body(style_preset="animé"), "#/style_preset"),
    (STRUCTURE, control_body(strength=0.5), "#/strength: extraneous key"),
    (SKETCH, control_body(prompt=None), "#/prompt: required key not found"),
    (SKETCH, control_body(seed=4294967295), "#/seed"),
    (GUIDE, guide_body(fidelity=-0.1), "#/fidelity"),
    (GUIDE, guide_body(aspect_ratio="4:3"), "#/aspect_ratio"),
]


@pytest.mark.parametrize(("model_id", "body", "message"), INVALID, ids=[f"{m}:{x}" for m, _, x in INVALID])
def test_invalid_bodies_are_rejected_naming_the_field_and_cost_no_invocation(
    emulator: EmulatorHandle, client: Any, model_id: str, body: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(client.exceptions.ValidationException) as caught:
        invoke(client, model_id, body)
    assert message in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    counted = stats(emulator)
    assert (counted["attempts"], counted["rejected"], counted["invocations"]) == (1, 1, 0)


@pytest.mark.parametrize(
    ("raw", "headers", "message"),
    [
        (b"{not json", {"Content-Type": "application/json"}, "not valid JSON"),
        (b"{}", {"Content-Type": "text/plain"}, "contentType text/plain"),
        (b"{}", {"Content-Type": "application/json", "Accept": "image/png"}, "accept image/png"),
    ],
)
def test_unreadable_requests_are_validation_errors(emulator: EmulatorHandle, raw, headers, message) -> None:
    response = requests.post(f"{emulator.url}/model/{SD3}/invoke", data=raw, headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "ValidationException"
    assert message in response.json()["message"]


def test_unknown_model_is_resource_not_found(emulator: EmulatorHandle, client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        invoke(client, "stability.sd3-5-medium-v9:0", sd3_body())
    assert SD3 in caught.value.response["Error"]["Message"]  # it says what it does serve
    assert stats(emulator)["rejected"] == 1


# --- faults -------------------------------------------------------------------------------

FAULTS = [
    ("throttle_first", "ThrottlingException", 429, "refused"),
    ("unavailable_first", "ServiceUnavailableException", 503, "refused"),
    ("timeout_first", "ModelTimeoutException", 408, "invocations"),
    ("fail_first", "InternalServerException", 500, "invocations"),
    ("model_error_first", "ModelErrorException", 424, "invocations"),
]


@pytest.mark.parametrize(("setting", "error", "status", "counted_as"), FAULTS)
def test_counted_faults_raise_the_modelled_exception_then_clear(
    emulator: EmulatorHandle, client: Any, setting: str, error: str, status: int, counted_as: str
) -> None:
    emulator.emulator.set_faults(**{setting: 2})
    for _ in range(2):
        with pytest.raises(getattr(client.exceptions, error)) as caught:
            invoke(client, SD3, sd3_body())
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["x-img2img-emulator"] == "true"
    payload, _ = invoke(client, SD3, sd3_body())
    assert payload["finish_reasons"] == [None]
    counted = stats(emulator)
    assert counted["attempts"] == 3
    assert counted[counted_as] == (2 if counted_as == "refused" else 3)


def test_botocore_retries_throttling_by_itself(emulator: EmulatorHandle) -> None:
    emulator.emulator.set_faults(throttle_first=2)
    payload, _ = invoke(make_client(emulator.url, max_attempts=3), ULTRA, ultra_body())
    assert len(payload["images"]) == 1
    counted = stats(emulator)
    assert (counted["attempts"], counted["refused"], counted["invocations"]) == (3, 2, 1)


def test_a_timed_out_invocation_counts_and_its_retry_succeeds(emulator: EmulatorHandle, client: Any) -> None:
    emulator.emulator.set_faults(timeout_first=1)
    with pytest.raises(client.exceptions.ModelTimeoutException):
        invoke(client, SD3, sd3_body())
    invoke(client, SD3, sd3_body())
    counted = stats(emulator)
    assert counted["invocations"] == 2
    assert counted["outcomes"] == {"ModelTimeoutException": 1, "success": 1}


@pytest.mark.parametrize(
    "model_id", [SDXL, f"us.{SDXL}", "amazon.nova-canvas-v1:0", "amazon.titan-image-generator-v2:0"]
)
def test_models_bedrock_retired_have_reached_end_of_life(
    emulator: EmulatorHandle, client: Any, model_id: str
) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        invoke(client, model_id, {"text_prompts": [{"text": "x"}]})
    assert "reached the end of its life" in caught.value.response["Error"]["Message"]
    assert stats(emulator)["invocations"] == 0


@pytest.mark.parametrize("model_id", [SD3, f"us.{SD3}"])
def test_a_live_model_can_be_retired_to_rehearse_its_end_of_life(
    emulator: EmulatorHandle, client: Any, model_id: str
) -> None:
    emulator.emulator.set_faults(retired_models=SD3)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        invoke(client, model_id, sd3_body())
    assert "reached the end of its life" in caught.value.response["Error"]["Message"]
    assert stats(emulator)["invocations"] == 0


def test_denied_models_are_access_denied(emulator: EmulatorHandle, client: Any) -> None:
    emulator.emulator.set_faults(denied_models=[ULTRA, STRUCTURE])
    with pytest.raises(client.exceptions.AccessDeniedException) as caught:
        invoke(client, ULTRA, ultra_body())
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    invoke(client, SD3, sd3_body())  # other models still answer


@pytest.mark.parametrize("model_id", LIVE)
def test_filter_word_answers_the_documented_filtered_body(
    emulator: EmulatorHandle, client: Any, model_id: str
) -> None:
    emulator.emulator.set_faults(filter_word="Lighthouse")
    payload, _ = invoke(client, model_id, BODIES[model_id]())
    assert payload == {"finish_reasons": ["Filter reason: prompt"]}  # no seeds, no images
    assert stats(emulator)["outcomes"] == {"content_filtered": 1}
    sd3, _ = invoke(client, SD3, sd3_body(prompt="a harbour"))
    assert sd3["finish_reasons"] == [None]


def test_unfiltered_prompts_still_answer(emulator: EmulatorHandle, client: Any) -> None:
    emulator.emulator.set_faults(filter_word="Lighthouse")
    unfiltered, _ = invoke(client, SD3, sd3_body(prompt="a harbour"))
    assert unfiltered["finish_reasons"] == [None]


def test_latency_setting_is_applied_without_failing_calls(emulator: EmulatorHandle, client: Any) -> None:
    emulator.emulator.set_faults(latency_ms=20)
    _, headers = invoke(client, SD3, sd3_body())
    assert "x-amzn-bedrock-invocation-latency" in headers
    assert emulator.emulator.faults.latency_ms == 20


def test_faults_and_reset_over_http(emulator: EmulatorHandle, client: Any) -> None:
    url = f"{emulator.url}/_emulator"
    answer = requests.post(f"{url}/faults", json={"fail_first": 1, "retired_models": "a,b"}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["fail_first"] == 1
    assert answer.json()["retired_models"] == ["a", "b"]
    bad = requests.post(f"{url}/faults", json={"fail_frist": 1}, timeout=5)
    assert bad.status_code == 400
    assert "fail_frist" in bad.json()["message"]
    negative = requests.post(f"{url}/faults", json={"timeout_first": -1}, timeout=5)
    assert negative.status_code == 400
    assert "timeout_first" in negative.json()["message"]
    assert requests.post(f"{url}/reset", timeout=5).status_code == 200
    invoke(client, SD3, sd3_body())  # the 500 was cleared with the faults
    assert requests.get(f"{url}/faults", timeout=5).json()["fail_first"] == 0
    assert stats(emulator)["attempts"] == 1


def test_faults_from_the_environment() -> None:
    faults = EmulatorFaults.from_env(
        {
            "IMG2IMG_EMULATOR_LATENCY_MS": "5",
            "IMG2IMG_EMULATOR_THROTTLE_FIRST": "1",
            "IMG2IMG_EMULATOR_TIMEOUT_FIRST": "2",
            "IMG2IMG_EMULATOR_FAIL_FIRST": "3",
            "IMG2IMG_EMULATOR_FILTER_WORD": "forbidden",
            "IMG2IMG_EMULATOR_RETIRED_MODELS": f"{SDXL}, {SD3}",
            "IMG2IMG_EMULATOR_DENIED_MODELS": ULTRA,
            "IMG2IMG_EMULATOR_LEGACY_MODELS": SD3,
            "UNRELATED": "x",
        }
    )
    assert (faults.latency_ms, faults.throttle_first, faults.timeout_first, faults.fail_first) == (5, 1, 2, 3)
    assert faults.filter_word == "forbidden"
    assert faults.retired_models == {SDXL, SD3}
    assert faults.denied_models == {ULTRA}
    assert faults.legacy_models == {SD3}
    with pytest.raises(ValueError, match="fail_first"):
        EmulatorFaults.from_env({"IMG2IMG_EMULATOR_FAIL_FIRST": "many"})


def test_start_emulator_reads_the_environment_and_keywords_override_it() -> None:
    environ = {"IMG2IMG_EMULATOR_THROTTLE_FIRST": "1", "IMG2IMG_EMULATOR_FAIL_FIRST": "1"}
    with start_emulator(environ=environ, fail_first=0) as handle:
        client = make_client(handle.url)
        with pytest.raises(client.exceptions.ThrottlingException):
            invoke(client, SD3, sd3_body())
        invoke(client, SD3, sd3_body())


def test_stats_add_up(emulator: EmulatorHandle, client: Any) -> None:
    emulator.emulator.set_faults(throttle_first=1, fail_first=1)
    calls: list[tuple[str, dict[str, Any]]] = [
        (SD3, sd3_body()),  # throttled
        (SD3, sd3_body(strength=7)),  # rejected
        (SD3, sd3_body()),  # 500
        (ULTRA, ultra_body()),
        (f"us.{ULTRA}", ultra_body()),
        ("nope", {}),  # rejected
    ]
    for model_id, body in calls:
        with contextlib.suppress(client.exceptions.ClientError):
            invoke(client, model_id, body)
    counted = stats(emulator)
    assert counted["attempts"] == 6 == counted["rejected"] + counted["refused"] + counted["invocations"]
    assert (counted["rejected"], counted["refused"], counted["invocations"]) == (2, 1, 3)
    assert counted["by_model"] == {SD3: 1, ULTRA: 1, f"us.{ULTRA}": 1}


# --- the stand-in image ---------------------------------------------------------------


@pytest.mark.parametrize("model_id", LIVE)
def test_same_input_and_seed_give_the_same_bytes_and_another_seed_does_not(
    client: Any, model_id: str
) -> None:
    body = BODIES[model_id]()
    first, _ = invoke(client, model_id, body)
    again, _ = invoke(client, model_id, body)
    assert first_image(first) == first_image(again)
    changed, _ = invoke(client, model_id, with_seed(model_id, body, 8))
    assert first_image(changed) != first_image(first)


def test_another_model_paints_another_picture_captioned_as_emulated(client: Any) -> None:
    """The same prompt, source, seed and strength on two models: two pictures, each with its
    caption (white text on black in the top-left corner) saying it is emulated."""
    sd3, _ = invoke(client, SD3, sd3_body())
    ultra, _ = invoke(client, ULTRA, ultra_body())
    assert first_image(sd3) != first_image(ultra)
    assert distance(first_image(sd3), Image.open(io.BytesIO(first_image(ultra))).convert("RGB")) > 5
    for payload in (sd3, ultra):
        corner = Image.open(io.BytesIO(first_image(payload))).convert("RGB").crop((4, 4, 200, 20))
        assert all(low <= 5 and high >= 250 for low, high in corner.getextrema())  # black box, white text


@pytest.mark.parametrize(
    ("model_id", "far", "near"),
    [
        (SD3, sd3_body(strength=0.9), sd3_body(strength=0.2)),
        (ULTRA, ultra_body(strength=0.9), ultra_body(strength=0.2)),
        (STRUCTURE, control_body(control_strength=0.1), control_body(control_strength=0.9)),
        (GUIDE, guide_body(fidelity=0.1), guide_body(fidelity=0.9)),
    ],
)
def test_higher_strength_stays_closer_to_the_source(client: Any, model_id: str, far, near) -> None:
    far_image, _ = invoke(client, model_id, far)
    near_image, _ = invoke(client, model_id, near)
    assert distance(first_image(near_image), SOURCE) < distance(first_image(far_image), SOURCE) / 2


def test_style_preset_tints_the_result(client: Any) -> None:
    plain, _ = invoke(client, STRUCTURE, control_body())
    styled, _ = invoke(client, STRUCTURE, control_body(style_preset="neon-punk"))
    other, _ = invoke(client, STRUCTURE, control_body(style_preset="origami"))
    assert len({first_image(plain), first_image(styled), first_image(other)}) == 3


@pytest.mark.parametrize("model_id", LIVE)
def test_seed_zero_picks_a_seed_that_reproduces_the_image(client: Any, model_id: str) -> None:
    body = BODIES[model_id]() | {"seed": 0}
    payload, _ = invoke(client, model_id, body)
    seed = payload["seeds"][0]
    assert seed > 0
    again, _ = invoke(client, model_id, body | {"seed": seed})
    assert first_image(again) == first_image(payload)


def test_style_guide_output_follows_its_aspect_ratio_and_sd3_jpeg(client: Any) -> None:
    guide, _ = invoke(client, GUIDE, guide_body(aspect_ratio="16:9"))
    width, height = Image.open(io.BytesIO(first_image(guide))).size
    assert abs(width / height - 16 / 9) < 0.1
    sd3, _ = invoke(client, SD3, sd3_body(output_format="jpeg"))
    assert Image.open(io.BytesIO(first_image(sd3))).format == "JPEG"


# --- standalone -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_runs_standalone_as_a_module() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMG2IMG_EMULATOR_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "img2img_local.bedrock_emulator", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{url}/_emulator/stats", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        payload, headers = invoke(make_client(url), SD3, sd3_body())
        assert payload["finish_reasons"] == [None]
        assert headers["x-img2img-emulator"] == "true"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert b"NOT a diffusion model" in output
