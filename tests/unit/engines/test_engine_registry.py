from __future__ import annotations

import pytest

from img2img.domain.errors import InvalidRequest
from img2img.engines import base_model_id, engine_for, supported_model_ids
from img2img.engines.translation import SDXL_FIELDS

pytestmark = pytest.mark.unit

FAMILIES = {
    "stability.stable-diffusion-xl-v1": "sdxl",
    "stability.sd3-5-large-v1:0": "sd3",
    "amazon.nova-canvas-v1:0": "nova",
    "amazon.titan-image-generator-v2:0": "titan",
}


def test_supported_model_ids_lists_every_family() -> None:
    assert set(supported_model_ids()) == set(FAMILIES)


@pytest.mark.parametrize(("model_id", "family"), FAMILIES.items())
def test_engine_for_a_base_model_id(model_id: str, family: str) -> None:
    engine = engine_for(model_id)
    assert engine.family == family
    assert model_id in engine.model_ids


@pytest.mark.parametrize("prefix", ["us", "eu", "apac", "us-gov", "global", "jp"])
def test_inference_profile_prefix_resolves_to_the_base_engine(prefix: str) -> None:
    assert base_model_id(f"{prefix}.stability.sd3-5-large-v1:0") == "stability.sd3-5-large-v1:0"
    assert engine_for(f"{prefix}.stability.sd3-5-large-v1:0") is engine_for("stability.sd3-5-large-v1:0")


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-canvas-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-canvas-v1:0",
    ],
)
def test_model_and_profile_arns_resolve(arn: str) -> None:
    assert base_model_id(arn) == "amazon.nova-canvas-v1:0"
    assert engine_for(arn).family == "nova"


def test_provider_name_is_not_mistaken_for_a_prefix() -> None:
    assert base_model_id("stability.stable-diffusion-xl-v1") == "stability.stable-diffusion-xl-v1"
    assert base_model_id("amazon.titan-image-generator-v2:0") == "amazon.titan-image-generator-v2:0"


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
