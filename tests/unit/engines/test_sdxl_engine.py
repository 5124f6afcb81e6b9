from __future__ import annotations

import base64
from typing import Any

import pytest

from img2img.domain.errors import ModelError
from img2img.engines.base import ModelCall
from img2img.engines.sdxl import SdxlEngine

pytestmark = pytest.mark.unit

engine = SdxlEngine()
CALL = ModelCall(body={})


def test_body_is_the_sdxl_body_with_the_prepared_png(make_request, make_image) -> None:
    request = make_request(
        text_prompts=[{"text": "a fox", "weight": 1.0}, {"text": "blurry", "weight": -0.5}],
        image_strength=0.6,
        cfg_scale=12,
        sampler="K_EULER_ANCESTRAL",
        clip_guidance_preset="FAST_BLUE",
        seed=4294967295,
        steps=40,
        style_preset="animé",
        extras={"foo": 1},
        model_id="stability.stable-diffusion-xl-v1",
        output_format="webp",
    )
    image = make_image(1152, 896)

    call = engine.build_body(request, image)

    assert call.notes == ()
    assert base64.b64decode(call.body["init_image"]) == image.png
    assert call.body == {
        "text_prompts": [{"text": "a fox", "weight": 1.0}, {"text": "blurry", "weight": -0.5}],
        "init_image": call.body["init_image"],
        "init_image_mode": "IMAGE_STRENGTH",
        "image_strength": 0.6,
        "cfg_scale": 12,
        "sampler": "K_EULER_ANCESTRAL",
        "clip_guidance_preset": "FAST_BLUE",
        "samples": 1,
        "seed": 4294967295,
        "steps": 40,
        "style_preset": "anime",
        "extras": {"foo": 1},
    }


def test_step_schedule_fields_pass_through(make_request, make_image) -> None:
    request = make_request(init_image_mode="STEP_SCHEDULE", step_schedule_start=0.4, step_schedule_end=0.9)
    body = engine.build_body(request, make_image()).body
    assert (body["init_image_mode"], body["step_schedule_start"], body["step_schedule_end"]) == (
        "STEP_SCHEDULE",
        0.4,
        0.9,
    )
    assert "image_strength" not in body


def artifact_payload(make_image, **artifact: Any) -> dict[str, Any]:
    fields = {
        "seed": 77,
        "base64": base64.b64encode(make_image(8, 8).png).decode(),
        "finishReason": "SUCCESS",
    }
    fields.update(artifact)
    return {"result": "success", "artifacts": [{k: v for k, v in fields.items() if v is not None}]}


def test_parse_success(make_image) -> None:
    artifact = engine.parse_response(artifact_payload(make_image), CALL)
    assert (artifact.seed, artifact.finish_reason, artifact.detail) == (77, "SUCCESS", None)
    assert artifact.image == make_image(8, 8).png


def test_parse_content_filtered_keeps_the_blurred_image(make_image) -> None:
    artifact = engine.parse_response(artifact_payload(make_image, finishReason="CONTENT_FILTERED"), CALL)
    assert artifact.finish_reason == "CONTENT_FILTERED"
    assert artifact.image == make_image(8, 8).png
    assert "CONTENT_FILTERED" in (artifact.detail or "")


def test_parse_error_without_image(make_image) -> None:
    artifact = engine.parse_response(artifact_payload(make_image, finishReason="ERROR", base64=None), CALL)
    assert (artifact.finish_reason, artifact.image) == ("ERROR", b"")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"result": "success", "artifacts": "nope"},
        {"result": "success", "artifacts": []},
        {"result": "success", "artifacts": ["x"]},
        {"result": "success", "artifacts": [{"seed": 1, "base64": "AAAA", "finishReason": "DONE"}]},
        {"result": "success", "artifacts": [{"seed": 1, "base64": "AAAA", "finishReason": ["SUCCESS"]}]},
        {"result": "success", "artifacts": [{"seed": "1", "base64": "AAAA", "finishReason": "SUCCESS"}]},
        {"result": "success", "artifacts": [{"seed": True, "base64": "AAAA", "finishReason": "SUCCESS"}]},
        {"result": "success", "artifacts": [{"base64": "AAAA", "finishReason": "SUCCESS"}]},
        {"result": "success", "artifacts": [{"seed": 1, "base64": "not base64!", "finishReason": "SUCCESS"}]},
        {"result": "success", "artifacts": [{"seed": 1, "finishReason": "SUCCESS"}]},
    ],
)
def test_garbled_response_is_a_model_error(payload: dict[str, Any]) -> None:
    with pytest.raises(ModelError):
        engine.parse_response(payload, CALL)
