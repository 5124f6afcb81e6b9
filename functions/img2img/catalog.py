"""The model catalogue: what the service knows about Bedrock model ids, in one place.

- how an id is spelled (foundation model id, cross-region inference profile `us.<id>`, ARN);
- which ids Bedrock has retired, when, and what to set instead (refused before any call);
- the deployed default and its fallbacks.

Facts come from the Bedrock user guide (docs/models.md has each with its source, and
tests/fixtures/bedrock the same as JSON). functions/, infra/, local/ and client/ import this
module; it imports nothing heavy so that synth and the client stay quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# Cross-region (system-defined) inference profiles put a geography before the model id.
INFERENCE_PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")

SD3_5_LARGE = "stability.sd3-5-large-v1:0"
STABLE_IMAGE_ULTRA_V1_1 = "stability.stable-image-ultra-v1:1"
CONTROL_STRUCTURE = "us.stability.stable-image-control-structure-v1:0"
CONTROL_SKETCH = "us.stability.stable-image-control-sketch-v1:0"
STYLE_GUIDE = "us.stability.stable-image-style-guide-v1:0"

# What a new environment runs, and what it falls back to when that model is gone.
DEFAULT_MODEL_ID = SD3_5_LARGE
DEFAULT_FALLBACK_MODEL_IDS = (STABLE_IMAGE_ULTRA_V1_1, CONTROL_STRUCTURE)

LIFECYCLE_PAGE = "https://docs.aws.amazon.com/bedrock/latest/userguide/model-lifecycle-legacy.html"


@dataclass(frozen=True)
class Retired:
    """A model Bedrock no longer serves: every call answers ResourceNotFoundException."""

    model_id: str  # base model id
    name: str
    end_of_life: date | None  # None: gone from AWS's model lists, but AWS printed no date
    successor: str
    source: str

    def message(self, asked: str) -> str:
        when = f"on {self.end_of_life.isoformat()}" if self.end_of_life else "(AWS published no date)"
        return (
            f"model {asked} ({self.name}) reached end of life on Amazon Bedrock {when} and can no "
            f"longer be called: set model_id to {self.successor} (or leave it out for this "
            "environment's default)"
        )


_STABILITY_PAGE = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-stability-diffusion.html"
)
RETIRED: dict[str, Retired] = {
    r.model_id: r
    for r in (
        # The date is from AWS's end-of-life notice to customers (quoted in public issue
        # trackers); the user guide only dropped the model from its lists.
        Retired(
            "stability.stable-diffusion-xl-v1",
            "Stability SDXL 1.0",
            date(2025, 5, 20),
            SD3_5_LARGE,
            _STABILITY_PAGE,
        ),
        Retired("stability.sd3-large-v1:0", "Stability SD3 Large 1.0", None, SD3_5_LARGE, _STABILITY_PAGE),
        Retired(
            "stability.stable-image-ultra-v1:0",
            "Stability Stable Image Ultra 1.0 (v1:0)",
            None,
            STABLE_IMAGE_ULTRA_V1_1,
            _STABILITY_PAGE,
        ),
        Retired(
            "stability.stable-image-core-v1:0",
            "Stability Stable Image Core 1.0 (v1:0)",
            None,
            SD3_5_LARGE,
            _STABILITY_PAGE,
        ),
        Retired(
            "amazon.titan-image-generator-v2:0",
            "Amazon Titan Image Generator G1 v2",
            date(2026, 6, 30),
            SD3_5_LARGE,
            "https://docs.aws.amazon.com/bedrock/latest/userguide/model-card-amazon-titan-image-generator-g1-v2.html",
        ),
        Retired(
            "amazon.nova-canvas-v1:0",
            "Amazon Nova Canvas",
            date(2026, 9, 30),
            SD3_5_LARGE,
            "https://docs.aws.amazon.com/bedrock/latest/userguide/model-lifecycle-legacy.html",
        ),
    )
}


def split_inference_profile(model_id: str) -> tuple[str | None, str]:
    """(geography, base model id) for `us.<model>`; (None, id) for a foundation model id.
    An ARN of either (`...:foundation-model/<id>`, `...:inference-profile/us.<id>`) is read
    by its resource part."""
    resource = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    prefix, dot, rest = resource.partition(".")
    if dot and prefix in INFERENCE_PROFILE_PREFIXES:
        return prefix, rest
    return None, resource


def base_model_id(model_id: str) -> str:
    """The foundation model behind an id, an inference profile id or an ARN of either (what
    bedrock:GetFoundationModel takes)."""
    return split_inference_profile(model_id)[1]


def retirement(model_id: str) -> Retired | None:
    """The end of life of the model behind `model_id`, if Bedrock has retired it."""
    return RETIRED.get(base_model_id(model_id))
