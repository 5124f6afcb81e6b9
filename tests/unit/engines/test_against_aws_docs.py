"""Each engine against what AWS documents for its model (tests/fixtures/bedrock, transcribed
from the Bedrock user guide with source URLs), not against our own emulator: every body field
is a documented field within its documented range, every documented answer is read right."""

from __future__ import annotations

from typing import Any

import pytest

from img2img.domain.ports import ModelCall
from img2img.engines import engine_for
from tests.fixtures.bedrock_docs import LIVE, breaks_rule, model_doc, png

pytestmark = pytest.mark.unit

STEMS = list(LIVE)
SEED_BODY: dict[str, Any] = {  # the seed document's request, with every knob set
    "text_prompts": [{"text": "A space ship.", "weight": 1.0}, {"text": "blurry", "weight": -1.0}],
    "init_image_s3_key": "uploads/ship.png",
    "init_image_mode": "IMAGE_STRENGTH",
    "image_strength": 0.35,
    "cfg_scale": 7,
    "clip_guidance_preset": "FAST_BLUE",
    "sampler": "K_DPMPP_2S_ANCESTRAL",
    "samples": 1,
    "seed": 4294967295,
    "steps": 30,
    "style_preset": "isometric",
}


@pytest.mark.parametrize("stem", STEMS)
def test_the_fixture_names_the_configured_model(stem: str) -> None:
    doc = model_doc(stem)
    assert doc.model_id == LIVE[stem]
    assert doc.data["image_to_image"] is True
    assert all(url.startswith("https://docs.aws.amazon.com/") for url in doc.data["sources"])


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("size", [(1024, 1024), (1536, 640), (832, 1216)])
def test_the_body_holds_only_documented_fields_within_their_rules(
    make_request, make_image, stem, size
) -> None:
    doc = model_doc(stem)
    call = engine_for(doc.model_id).build_body(make_request(**SEED_BODY), make_image(*size))
    assert set(call.body) <= set(doc.fields), f"undocumented: {set(call.body) - set(doc.fields)}"
    missing = set(doc.required) - set(call.body)
    assert not missing, f"documented as required but not sent: {missing}"
    for name, value in call.body.items():
        problem = breaks_rule(doc.fields[name], value)
        assert problem is None, f"{stem}.{name}: {problem}"


def test_sd3_names_its_mode_as_its_page_says_image_to_image_needs(make_request, make_image) -> None:
    # The page's own example omits `mode`, but says it defaults to text-to-image.
    doc = model_doc("sd3-5-large")
    body = engine_for(doc.model_id).build_body(make_request(), make_image()).body
    assert body["mode"] == "image-to-image" and "image-to-image" in doc.fields["mode"]["values"]


@pytest.mark.parametrize("stem", STEMS)
def test_the_documented_success_answer_is_read(stem: str) -> None:
    doc = model_doc(stem)
    image = png(64, 64)
    artifact = engine_for(doc.model_id).parse_response(doc.success(image), ModelCall(body={"seed": 5}))
    assert artifact.finish_reason == "SUCCESS"
    assert artifact.seed == doc.data["responses"]["success"]["seeds"][0]
    assert artifact.image == image


@pytest.mark.parametrize("stem", [s for s in STEMS if model_doc(s).filtered()])
def test_the_documented_filtered_answer_is_content_filtered(stem: str) -> None:
    doc = model_doc(stem)
    for body in doc.filtered():
        artifact = engine_for(doc.model_id).parse_response(body, ModelCall(body={"seed": 5}))
        assert (artifact.finish_reason, artifact.image, artifact.seed) == ("CONTENT_FILTERED", b"", 5)
        assert artifact.detail == body["finish_reasons"][0]


@pytest.mark.parametrize("stem", STEMS)
def test_every_documented_finish_reason_maps_to_an_sdxl_finish_reason(stem: str) -> None:
    doc = model_doc(stem)
    engine = engine_for(doc.model_id)
    expected = {None: "SUCCESS", "Inference error": "ERROR"}
    for reason in doc.finish_reasons:
        # A non-success answer has the documented filtered shape: the reason alone.
        body = doc.success(png(8, 8)) if reason is None else {"finish_reasons": [reason]}
        artifact = engine.parse_response(body, ModelCall(body={"seed": 1}))
        assert artifact.finish_reason == expected.get(reason, "CONTENT_FILTERED"), reason
