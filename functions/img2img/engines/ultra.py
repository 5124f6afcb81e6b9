"""Stable Image Ultra 1.1 (`stability.stable-image-ultra-v1:1`, us-west-2): the SD3.5-style body
without `mode`; an `image` with `strength` (lower = closer to the source) makes it image-to-image,
seeds go up to 4294967295. AWS's parameter page documents `image` + `strength`, while its model
table lists text input only: the opt-in tests/aws suite checks it on a real account.
Source: docs/models.md."""

from __future__ import annotations

from img2img.catalog import STABLE_IMAGE_ULTRA_V1_1
from img2img.engines.stability import StabilityEngine, StabilityModel

ULTRA_MODEL = StabilityModel(
    family="ultra",
    model_ids=(STABLE_IMAGE_ULTRA_V1_1,),
    strength_field="strength",
    strength_sense="change",
    strength_meaning="0 keeps the source, 1 ignores it",
    max_seed=4_294_967_295,
)


def stable_image_ultra() -> StabilityEngine:
    return StabilityEngine(ULTRA_MODEL)
