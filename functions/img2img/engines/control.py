"""Stability AI Image Services, Control Structure and Control Sketch (cross-region inference
profiles `us.stability.stable-image-control-{structure,sketch}-v1:0`): a new image that keeps
the source's structure (edges, depth; the lines of a sketch) while the prompt sets everything
else. `control_strength` 0..1 says how closely the structure is kept, so SDXL's image_strength
maps onto it as is; the source's colours are not kept, which no SDXL field can ask for. Native
style presets. Source: docs/models.md#control-structure-and-control-sketch."""

from __future__ import annotations

from img2img.catalog import CONTROL_SKETCH, CONTROL_STRUCTURE
from img2img.engines.stability import StabilityEngine, StabilityModel


def _control(family: str, model_id: str) -> StabilityModel:
    return StabilityModel(
        family=family,
        model_ids=(model_id,),
        strength_field="control_strength",
        strength_sense="keep",
        strength_meaning="how closely the source's structure is kept; its colours are not",
        max_seed=4_294_967_294,
        native_style_presets=True,
        prompt_weights=True,
    )


def control_structure() -> StabilityEngine:
    return StabilityEngine(_control("control-structure", CONTROL_STRUCTURE))


def control_sketch() -> StabilityEngine:
    return StabilityEngine(_control("control-sketch", CONTROL_SKETCH))
