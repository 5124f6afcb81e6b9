"""The Bedrock emulator held to what AWS documents (tests/fixtures/bedrock), not to our engines:
it accepts each documented example body, answers in each documented shape (filtered included),
refuses every value outside a documented range, and says GetFoundationModel's documented shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from img2img_local.bedrock_emulator import EmulatorHandle, start_emulator
from tests.fixtures.bedrock_docs import LIVE, doc, model_doc, png

pytestmark = pytest.mark.local

STEMS = list(LIVE)
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-west-2"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with start_emulator(environ={}) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _clean(emulator: EmulatorHandle) -> None:
    emulator.emulator.reset()


@pytest.fixture
def runtime(emulator: EmulatorHandle) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("bedrock-runtime", endpoint_url=emulator.url, config=config, **CREDENTIALS)


def invoke(runtime: Any, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = runtime.invoke_model(modelId=model_id, body=json.dumps(body), contentType="application/json")
    return dict(json.loads(answer["body"].read()))


def documented_example(stem: str) -> dict[str, Any]:
    body = model_doc(stem).example(png(1024, 1024))
    if stem == "sd3-5-large":
        # AWS's own example omits `mode`, which the same page says defaults to text-to-image.
        body["mode"] = "image-to-image"
    return body


@pytest.mark.parametrize("stem", STEMS)
def test_the_documented_example_body_is_accepted_and_answered_in_the_documented_shape(
    runtime: Any, stem: str
) -> None:
    answer = invoke(runtime, LIVE[stem], documented_example(stem))
    success = model_doc(stem).data["responses"]["success"]
    assert set(answer) == set(success)
    assert answer["finish_reasons"] == success["finish_reasons"]
    assert all(isinstance(seed, int) for seed in answer["seeds"])


@pytest.mark.parametrize("stem", [s for s in STEMS if model_doc(s).filtered()])
def test_a_filtered_call_answers_exactly_the_documented_filtered_body(
    emulator: EmulatorHandle, runtime: Any, stem: str
) -> None:
    emulator.emulator.set_faults(filter_word=model_doc(stem).example(b"")["prompt"].split()[1])
    assert invoke(runtime, LIVE[stem], documented_example(stem)) in model_doc(stem).filtered()


def out_of_range(spec: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    if spec.get("type") in ("number", "integer"):
        if "max" in spec:
            values.append(spec["max"] + (1 if spec["type"] == "integer" or spec["max"] > 1 else 0.01))
        if "min" in spec:
            values.append(spec["min"] - (1 if spec["min"] >= 1 or spec["max"] > 1 else 0.01))
    if spec.get("type") == "enum":
        values.append("not-a-documented-value")
    if spec.get("type") == "string" and "max" in spec:
        values.append("x" * (spec["max"] + 1))
    return values


CASES = [
    (stem, name, value)
    for stem in STEMS
    for name, spec in model_doc(stem).fields.items()
    if name not in ("mode", "aspect_ratio")  # text-to-image only, refused with an image anyway
    for value in out_of_range(spec)
]


@pytest.mark.parametrize(
    ("stem", "field", "value"), CASES, ids=[f"{s}.{f}={str(v)[:12]}" for s, f, v in CASES]
)
def test_a_value_outside_a_documented_rule_is_a_validation_exception(
    emulator: EmulatorHandle, runtime: Any, stem: str, field: str, value: Any
) -> None:
    body = {**documented_example(stem), field: value}
    with pytest.raises(runtime.exceptions.ValidationException) as caught:
        invoke(runtime, LIVE[stem], body)
    assert field in caught.value.response["Error"]["Message"]
    assert emulator.emulator.stats()["invocations"] == 0


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("size", [(48, 512), (1700, 640)])
def test_a_source_outside_the_documented_image_rules_is_refused(
    emulator: EmulatorHandle, runtime: Any, stem: str, size: tuple[int, int]
) -> None:
    body = {**documented_example(stem), "image": model_doc(stem).example(png(*size))["image"]}
    with pytest.raises(runtime.exceptions.ValidationException):
        invoke(runtime, LIVE[stem], body)


def test_get_foundation_model_answers_the_documented_shape(emulator: EmulatorHandle) -> None:
    documented = doc("get-foundation-model")
    bedrock = boto3.client("bedrock", endpoint_url=emulator.url, **CREDENTIALS)
    details = bedrock.get_foundation_model(modelIdentifier="stability.sd3-5-large-v1:0")["modelDetails"]
    assert set(details) <= set(documented["active"]["modelDetails"])
    assert details["modelLifecycle"]["status"] == "ACTIVE"
    emulator.emulator.set_faults(legacy_models=["stability.sd3-5-large-v1:0"])
    details = bedrock.get_foundation_model(modelIdentifier="stability.sd3-5-large-v1:0")["modelDetails"]
    assert (
        details["modelLifecycle"]["status"]
        == documented["legacy"]["modelDetails"]["modelLifecycle"]["status"]
    )
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_foundation_model(modelIdentifier="stability.stable-diffusion-xl-v1")
