"""Helpers shared by the engines that translate the SDXL body into another family's body:
prompt joining, weight and dropped-field notes, style presets as prompt phrases."""

from __future__ import annotations

import base64
from collections.abc import Iterable

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.domain.request import ImageToImageRequest, TextPrompt

# Every field of the SDXL body, in the seed document's order: each engine describes them all.
SDXL_FIELDS: tuple[str, ...] = (
    "text_prompts",
    "init_image",
    "init_image_mode",
    "image_strength",
    "step_schedule_start",
    "step_schedule_end",
    "cfg_scale",
    "clip_guidance_preset",
    "sampler",
    "samples",
    "seed",
    "steps",
    "style_preset",
    "extras",
)

# A style preset said in words, for models that only understand the prompt.
STYLE_PHRASES: dict[str, str] = {
    "3d-model": "3D model render",
    "analog-film": "analog film photograph",
    "anime": "anime style",
    "cinematic": "cinematic film still",
    "comic-book": "comic book style",
    "digital-art": "digital art",
    "enhance": "highly detailed, enhanced",
    "fantasy-art": "fantasy art",
    "isometric": "isometric style",
    "line-art": "line art",
    "low-poly": "low-poly 3D style",
    "modeling-compound": "modeling compound clay style",
    "neon-punk": "neon punk style",
    "origami": "origami paper style",
    "photographic": "photograph",
    "pixel-art": "pixel art",
    "tile-texture": "seamless tileable texture",
}

PROMPT_SEPARATOR = ", "


def join_prompts(prompts: Iterable[TextPrompt]) -> str:
    """One text from several prompts; empty texts add nothing."""
    return PROMPT_SEPARATOR.join(p.text.strip() for p in prompts if p.text.strip())


def weight_notes(request: ImageToImageRequest, family: str) -> list[str]:
    """One note per prompt whose weight the target family cannot express."""
    notes: list[str] = []
    for index, prompt in enumerate(request.text_prompts):
        if prompt.weight in (1.0, -1.0):
            continue
        if prompt.weight == 0:
            notes.append(
                f"text_prompts[{index}] has weight 0 and was dropped: {family} has no prompt weights"
            )
        else:
            side = "prompt" if prompt.weight > 0 else "negative prompt"
            notes.append(
                f"text_prompts[{index}] weight {prompt.weight:g} dropped: {family} has no prompt weights, "
                f"the text joins the {side} at full weight"
            )
    return notes


def dropped_field_notes(request: ImageToImageRequest, reasons: dict[str, str]) -> list[str]:
    """A note for each field the caller set explicitly that the target family has no use for."""
    notes: list[str] = []
    for name, reason in reasons.items():
        if name in request.model_fields_set:
            notes.append(f"{name} {getattr(request, name)!r} dropped: {reason}")
    return notes


def with_style(prompt: str, request: ImageToImageRequest, family: str, limit: int) -> tuple[str, str | None]:
    """Approximate `style_preset` by appending its phrase to the prompt, when it fits the
    family's prompt limit. Returns the prompt and the note describing what happened."""
    preset = request.style_preset
    if preset is None:
        return prompt, None
    phrase = STYLE_PHRASES[preset]
    styled = f"{prompt}{PROMPT_SEPARATOR}{phrase}" if prompt else phrase
    if len(styled) > limit:
        return (
            prompt,
            f"style_preset {preset!r} dropped: {family} has no style presets and the prompt has no room",
        )
    return styled, (
        f"style_preset {preset!r} approximated: {family} has no style presets, "
        f"'{phrase}' appended to the prompt"
    )


def require_length(text: str, limit: int, family: str, what: str) -> None:
    """Reject before any model call (it would fail there, after costing a round trip)."""
    if len(text) > limit:
        raise InvalidRequest(
            f"the {what} is too long for {family}",
            [
                FieldError(
                    "text_prompts",
                    f"{family} takes at most {limit} characters of {what}; the joined text has {len(text)}",
                )
            ],
        )


def image_base64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")
