"""Stable Diffusion 3.5 Large: one prompt and one negative prompt, `strength` instead of
`image_strength`, no sampler, steps, cfg or style presets. What cannot be expressed is
dropped (or approximated) and reported in the call's notes."""

from __future__ import annotations

from typing import Any

from img2img.domain.errors import FieldError, InvalidRequest, ModelError
from img2img.domain.imaging import PreparedImage
from img2img.domain.request import ImageToImageRequest
from img2img.engines.base import Artifact, FinishReason, ModelCall
from img2img.engines.responses import decode_image, first_of, require_int
from img2img.engines.translation import (
    SDXL_FIELDS,
    dropped_field_notes,
    image_base64,
    join_prompts,
    require_length,
    weight_notes,
    with_style,
)

MAX_PROMPT_CHARS = 10_000
MAX_SEED = 4_294_967_294  # one less than SDXL's
FILTER_PREFIX = "Filter reason"

_NOT_SUPPORTED = {
    "cfg_scale": "sd3 has no cfg_scale",
    "sampler": "sd3 picks its own sampler",
    "steps": "sd3 has no steps setting",
    "clip_guidance_preset": "sd3 has no CLIP guidance",
    "extras": "sd3 takes no extra parameters",
    "step_schedule_end": "sd3 has no schedule end, only strength",
}


class Sd3Engine:
    family: str = "sd3"
    model_ids: tuple[str, ...] = ("stability.sd3-5-large-v1:0",)

    def build_body(self, request: ImageToImageRequest, image: PreparedImage) -> ModelCall:
        notes = weight_notes(request, self.family)
        prompt = join_prompts(request.positive_prompts)
        if not prompt:
            raise InvalidRequest(
                "sd3 needs a prompt",
                [
                    FieldError(
                        "text_prompts", "sd3 needs at least one non-empty prompt with a positive weight"
                    )
                ],
            )
        require_length(prompt, MAX_PROMPT_CHARS, self.family, "prompt")
        prompt, style_note = with_style(prompt, request, self.family, MAX_PROMPT_CHARS)
        notes.extend([style_note] if style_note else [])
        body: dict[str, Any] = {"prompt": prompt}
        negative = join_prompts(request.negative_prompts)
        if negative:
            require_length(negative, MAX_PROMPT_CHARS, self.family, "negative prompt")
            body["negative_prompt"] = negative
        # The same knob seen from the other side: SDXL keeps, SD3 changes.
        strength = round(1.0 - request.effective_image_strength, 6)
        seed = request.seed
        if seed > MAX_SEED:
            notes.append(f"seed {seed} clamped to {MAX_SEED}: the largest seed sd3 takes")
            seed = MAX_SEED
        body.update(
            mode="image-to-image",
            image=image_base64(image.png),
            strength=strength,
            seed=seed,
            output_format="png",
        )
        notes.extend(dropped_field_notes(request, _NOT_SUPPORTED))
        return ModelCall(body=body, notes=tuple(notes))

    def parse_response(self, payload: dict[str, Any], call: ModelCall) -> Artifact:
        seed = require_int(first_of(payload, "seeds", self.family), self.family, "seeds")
        reason = first_of(payload, "finish_reasons", self.family)
        if reason is not None and not isinstance(reason, str):
            raise ModelError(f"the sd3 response has a finish reason that is not text: {reason!r}")
        finish = _finish_reason(reason)
        images = payload.get("images")
        if finish == "SUCCESS" or (isinstance(images, list) and images):
            image = decode_image(first_of(payload, "images", self.family), self.family, "images")
        else:
            image = b""
        return Artifact(seed=seed, image=image, finish_reason=finish, detail=reason)

    def field_support(self) -> dict[str, str]:
        support = dict.fromkeys(SDXL_FIELDS, "dropped")
        support.update(
            text_prompts="positive texts joined into prompt, negative into negative_prompt; weights dropped",
            init_image="sent as image",
            init_image_mode="both modes mapped to strength",
            image_strength="mapped to strength = 1 - image_strength",
            step_schedule_start="mapped to strength = step_schedule_start",
            samples="always 1",
            seed=f"passed through; 4294967295 clamped to {MAX_SEED}; 0 = random",
            style_preset="approximated: the style's words appended to the prompt",
        )
        return support


def _finish_reason(reason: str | None) -> FinishReason:
    if reason is None:
        return "SUCCESS"
    if reason.startswith(FILTER_PREFIX):
        return "CONTENT_FILTERED"
    return "ERROR"
