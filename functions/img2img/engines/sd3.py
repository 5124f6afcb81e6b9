"""Stable Diffusion 3.5 Large (`stability.sd3-5-large-v1:0`, on demand in us-west-2):
`mode: "image-to-image"`, `strength` is how much to change the source (0 keeps it, 1 ignores
it), seeds up to 4294967294, no sampler, steps, cfg or style presets (the style's words join
the prompt). Source: docs/models.md#sd35-large."""

from __future__ import annotations

from img2img.catalog import SD3_5_LARGE
from img2img.engines.stability import StabilityEngine, StabilityModel

SD3_5_LARGE_MODEL = StabilityModel(
    family="sd3",
    model_ids=(SD3_5_LARGE,),
    strength_field="strength",
    strength_sense="change",
    strength_meaning="0 keeps the source, 1 ignores it",
    max_seed=4_294_967_294,
    mode="image-to-image",
)


def sd3_5_large() -> StabilityEngine:
    return StabilityEngine(SD3_5_LARGE_MODEL)
