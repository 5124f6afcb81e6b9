from __future__ import annotations

import pytest

from img2img import catalog
from img2img.catalog import base_model_id, retirement, split_inference_profile
from img2img.domain.errors import InvalidRequest
from img2img.engines import engine_for, supported_model_ids
from img2img.engines.translation import SDXL_FIELDS

pytestmark = pytest.mark.unit

FAMILIES = {
    "stability.sd3-5-large-v1:0": "sd3",
    "stability.stable-image-ultra-v1:1": "ultra",
    "us.stability.stable-image-control-structure-v1:0": "control-structure",
    "us.stability.stable-image-control-sketch-v1:0": "control-sketch",
    "us.stability.stable-image-style-guide-v1:0": "style-guide",
}
RETIRED = (
    "stability.stable-diffusion-xl-v1",
    "amazon.titan-image-generator-v2:0",
    "amazon.nova-canvas-v1:0",
    "stability.sd3-large-v1:0",
    "stability.stable-image-ultra-v1:0",
)


def test_supported_model_ids_lists_every_live_model() -> None:
    assert set(supported_model_ids()) == set(FAMILIES)


@pytest.mark.parametrize(("model_id", "family"), FAMILIES.items())
def test_engine_for_a_model_id(model_id: str, family: str) -> None:
    engine = engine_for(model_id)
    assert engine.family == family
    assert model_id in engine.model_ids


@pytest.mark.parametrize("prefix", ["us", "eu", "apac", "us-gov", "global", "jp"])
def test_inference_profile_prefix_resolves_to_the_base_engine(prefix: str) -> None:
    assert base_model_id(f"{prefix}.stability.sd3-5-large-v1:0") == "stability.sd3-5-large-v1:0"
    assert engine_for(f"{prefix}.stability.sd3-5-large-v1:0") is engine_for("stability.sd3-5-large-v1:0")


@pytest.mark.parametrize(
    ("arn", "base"),
    [
        (
            "arn:aws:bedrock:us-west-2::foundation-model/stability.sd3-5-large-v1:0",
            "stability.sd3-5-large-v1:0",
        ),
        (
            "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.stability.stable-image-style-guide-v1:0",
            "stability.stable-image-style-guide-v1:0",
        ),
    ],
)
def test_model_and_profile_arns_resolve(arn: str, base: str) -> None:
    assert base_model_id(arn) == base
    assert engine_for(arn) is engine_for(base)


def test_provider_name_is_not_mistaken_for_a_prefix() -> None:
    assert split_inference_profile("stability.sd3-5-large-v1:0") == (None, "stability.sd3-5-large-v1:0")
    assert split_inference_profile("us.stability.x-v1:0") == ("us", "stability.x-v1:0")


@pytest.mark.parametrize("model_id", ["stability.stable-diffusion-xl-v0", "us.meta.llama3-8b", "nova", ""])
def test_unknown_model_id_names_the_field_and_lists_supported_ids(model_id: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        engine_for(model_id)
    [detail] = caught.value.details
    assert detail.field == "model_id"
    for supported in FAMILIES:
        assert supported in detail.message
    assert "us." in detail.message


@pytest.mark.parametrize("model_id", list(FAMILIES))
def test_field_support_describes_every_sdxl_field(model_id: str) -> None:
    support = engine_for(model_id).field_support()
    assert tuple(support) == SDXL_FIELDS
    assert all(isinstance(phrase, str) and phrase for phrase in support.values())


@pytest.mark.parametrize("model_id", RETIRED)
def test_retired_models_have_no_engine_and_name_a_live_successor(model_id: str) -> None:
    retired = retirement(model_id)
    assert retired is not None
    assert retirement(f"us.{model_id}") is retired
    with pytest.raises(InvalidRequest):
        engine_for(model_id)
    assert engine_for(retired.successor).family in FAMILIES.values()
    message = retired.message(model_id)
    assert retired.successor in message and "end of life" in message
    if retired.end_of_life:
        assert retired.end_of_life.isoformat() in message


def test_the_default_and_its_fallbacks_are_live_models_with_engines() -> None:
    for model_id in (catalog.DEFAULT_MODEL_ID, *catalog.DEFAULT_FALLBACK_MODEL_IDS):
        assert retirement(model_id) is None
        assert model_id in FAMILIES
