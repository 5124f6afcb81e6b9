"""What only a real account can show (opt-in: `make e2e ENV=dev`): every configured model,
fallbacks included, takes the SDXL body through the deployed service (Stable Image Ultra 1.1's
image input is documented on its parameter page but not in AWS's model table), a retired id is
refused without a call, and every configured model reads ACTIVE in GetFoundationModel. Each
model call costs cents: one per configured model."""

from __future__ import annotations

import base64
import json

import pytest

from img2img.catalog import base_model_id
from tests.aws.conftest import Deployed
from tests.aws.test_e2e import assert_is_image, sdxl_body

pytestmark = pytest.mark.aws


def test_every_configured_model_reads_active(deployed: Deployed) -> None:
    """What cannot be checked offline: what GetFoundationModel answers for the base id of a model
    used only through a `us.` profile in this region, and GetInferenceProfile for the profile.
    Both are printed; the lifecycle watch's own reading must be ACTIVE for every model."""
    from img2img.adapters.model_catalog import FoundationModels

    bedrock = deployed.session.client("bedrock", region_name=deployed.config.model_region)
    for model_id in deployed.config.configured_model_ids:
        if base_model_id(model_id) != model_id:
            try:
                found = bedrock.get_foundation_model(modelIdentifier=base_model_id(model_id))["modelDetails"]
                print(f"{model_id}: GetFoundationModel {found['modelLifecycle']}")
            except bedrock.exceptions.ResourceNotFoundException as exc:
                print(f"{model_id}: GetFoundationModel {exc}")
            profile = bedrock.get_inference_profile(inferenceProfileIdentifier=model_id)
            print(f"{model_id}: GetInferenceProfile {profile['status']}")
        status = FoundationModels(bedrock).status(model_id)
        assert status.status == "ACTIVE", (model_id, status)


def test_every_allowed_model_takes_the_sdxl_body(deployed: Deployed, source_png: bytes) -> None:
    for model_id in deployed.config.allowed_model_ids:
        body = {**sdxl_body(source_png, "a watercolour lighthouse at dusk"), "model_id": model_id}
        response = deployed.call("POST", "/v1/image-to-image", body, timeout=35)
        assert response.status_code == 200, (model_id, response.text)
        (artifact,) = response.json()["artifacts"]
        assert artifact["finishReason"] in {"SUCCESS", "CONTENT_FILTERED"}, (model_id, response.text)
        if artifact["finishReason"] == "SUCCESS":
            assert_is_image(base64.b64decode(artifact["base64"]))


def test_a_fallback_model_answers_the_translated_body_directly(deployed: Deployed, source_png: bytes) -> None:
    """Fallbacks are not callable through the API unless allowed: call each one as the worker would."""
    from img2img.domain.imaging import ImageLimits, prepare_image
    from img2img.domain.request import parse_request
    from img2img.engines import engine_for

    runtime = deployed.session.client("bedrock-runtime", region_name=deployed.config.model_region)
    request = parse_request({**sdxl_body(source_png, "a watercolour lighthouse at dusk")})
    prepared = prepare_image(source_png, request.resize_mode, ImageLimits())
    for model_id in deployed.config.fallback_model_ids:
        engine = engine_for(model_id)
        call = engine.build_body(request, prepared)
        answer = runtime.invoke_model(
            modelId=model_id, body=json.dumps(call.body), contentType="application/json"
        )
        artifact = engine.parse_response(json.loads(answer["body"].read()), call)
        assert artifact.finish_reason in {"SUCCESS", "CONTENT_FILTERED"}, model_id


def test_a_retired_model_is_refused_with_its_end_of_life(deployed: Deployed, source_png: bytes) -> None:
    body = {**sdxl_body(source_png, "a lighthouse"), "model_id": "stability.stable-diffusion-xl-v1"}
    response = deployed.call("POST", "/v1/image-to-image", body)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "2025-05-20" in response.json()["error"]["message"]


def test_bedrock_itself_answers_end_of_life_for_sdxl(deployed: Deployed) -> None:
    """The answer the fallback is built on, from AWS itself (costs nothing: no model runs)."""
    runtime = deployed.session.client("bedrock-runtime", region_name=deployed.config.model_region)
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.invoke_model(
            modelId="stability.stable-diffusion-xl-v1", body=b'{"text_prompts": [{"text": "x"}]}'
        )
