"""Stability AI Image Services, Style Guide (`us.stability.stable-image-style-guide-v1:0`): a
new image in the style of the source. `fidelity` 0..1 says how closely the output resembles
the source's style, the nearest thing to SDXL's image_strength; the output size comes from an
`aspect_ratio`, the one nearest the prepared source. Native style presets.
Source: docs/models.md#style-guide."""

from __future__ import annotations

from img2img.catalog import STYLE_GUIDE
from img2img.engines.stability import StabilityEngine, StabilityModel

STYLE_GUIDE_MODEL = StabilityModel(
    family="style-guide",
    model_ids=(STYLE_GUIDE,),
    strength_field="fidelity",
    strength_sense="keep",
    strength_meaning="how closely the output resembles the source's style",
    max_seed=4_294_967_294,
    native_style_presets=True,
    prompt_weights=True,
    aspect_ratio=True,
)


def style_guide() -> StabilityEngine:
    return StabilityEngine(STYLE_GUIDE_MODEL)
