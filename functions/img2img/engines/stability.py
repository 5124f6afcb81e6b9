"""What every live Stability model on Bedrock shares (SD3.5 Large, Stable Image Ultra and the
Stability AI Image Services): one `prompt` and one `negative_prompt`, a 0..1 knob for how much
of the source survives, optional native style presets, and one answer shape:

    {"seeds": [n], "finish_reasons": [null], "images": [b64]}      success
    {"finish_reasons": ["Filter reason: prompt"]}                 filtered: no seeds, no images

Each model is a `StabilityModel` (its own module says which fields it takes and how); the
`StabilityEngine` translates the SDXL body by those facts and reads the answer back. The
facts, with their AWS sources, are in docs/models.md and tests/fixtures/bedrock/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from img2img.domain.errors import FieldError, InvalidRequest, ModelError
from img2img.domain.imaging import PreparedImage
from img2img.domain.ports import Artifact, ModelCall
from img2img.domain.request import ImageToImageRequest
from img2img.engines.responses import decode_image, require_int
from img2img.engines.translation import (
    PROMPT_SEPARATOR,
    SDXL_FIELDS,
    dropped_field_notes,
    image_base64,
    join_prompts,
    require_length,
    weight_notes,
    with_style,
)
from img2img.vocabulary import FinishReason

FILTER_PREFIX = "Filter reason"
MAX_PROMPT_WEIGHT = 2.0  # "a value between 1.1 and 2 emphasized the word"

# How the SDXL image_strength (near 1 = stay close to the source) becomes the model's knob:
#   "change": the model's value is how much to change (strength = 1 - image_strength);
#   "keep":   the model's value is how much of the source to keep (image_strength as is).
StrengthSense = Literal["change", "keep"]

# Output aspect ratios a model may take instead of the source's own (Style Guide), as w/h.
ASPECT_RATIOS: dict[str, float] = {
    "21:9": 21 / 9,
    "16:9": 16 / 9,
    "3:2": 3 / 2,
    "5:4": 5 / 4,
    "1:1": 1.0,
    "4:5": 4 / 5,
    "2:3": 2 / 3,
    "9:16": 9 / 16,
    "9:21": 9 / 21,
}


@dataclass(frozen=True)
class ImageRules:
    """What a model accepts as its source image, checked before any call."""

    min_side: int = 64
    max_pixels: int = 9_437_184
    max_aspect: float = 2.5  # long side / short side

    def check(self, image: PreparedImage, family: str) -> None:
        width, height = image.width, image.height
        problem = None
        if min(width, height) < self.min_side:
            problem = f"each side must be at least {self.min_side} pixels"
        elif width * height > self.max_pixels:
            problem = f"at most {self.max_pixels} pixels"
        elif max(width, height) / min(width, height) > self.max_aspect:
            problem = f"an aspect ratio between 1:{self.max_aspect:g} and {self.max_aspect:g}:1"
        if problem:
            raise InvalidRequest(
                f"{family} cannot take a {width}x{height} source",
                [
                    FieldError(
                        "init_image", f"{family} needs {problem}; the prepared source is {width}x{height}"
                    )
                ],
            )


@dataclass(frozen=True)
class StabilityModel:
    family: str  # the name notes and GET /v1/models use
    model_ids: tuple[str, ...]  # base ids, or profile ids for profile-only models
    strength_field: str  # "strength", "control_strength", "fidelity"
    strength_sense: StrengthSense
    strength_meaning: str  # for GET /v1/models: what the knob does on this model
    max_seed: int
    max_prompt_chars: int = 10_000
    mode: str | None = None  # SD3.5 Large names its task: "image-to-image"
    native_style_presets: bool = False
    # "(word:weight)" in the prompt, weights 0..MAX_PROMPT_WEIGHT: documented for the Image
    # Services only; the SD3.5 Large and Ultra pages say nothing of it, so there they are dropped.
    prompt_weights: bool = False
    aspect_ratio: bool = False  # takes an output aspect_ratio (the source's nearest is sent)
    image_rules: ImageRules = ImageRules()


class StabilityEngine:
    def __init__(self, model: StabilityModel) -> None:
        self.model = model
        self.family = model.family
        self.model_ids = model.model_ids

    # --- the body -------------------------------------------------------------------------

    def check_request(self, request: ImageToImageRequest) -> None:
        """The rules this model puts on the request alone (a prompt, its length with the style
        phrase): the doors check them before anything is stored or queued."""
        self._text(request, [])

    def build_body(self, request: ImageToImageRequest, image: PreparedImage) -> ModelCall:
        m = self.model
        m.image_rules.check(image, m.family)
        notes: list[str] = []
        body = self._text(request, notes)
        if m.mode:
            body["mode"] = m.mode
        body["image"] = image_base64(image.png)
        keep = request.effective_image_strength
        body[m.strength_field] = round(1.0 - keep if m.strength_sense == "change" else keep, 6)
        if m.strength_sense == "keep":
            # Not the same knob: say so on every job, not only in GET /v1/models.
            notes.append(
                f"image_strength {keep:g} approximated as {m.strength_field} {body[m.strength_field]:g}: "
                f"{m.strength_meaning}"
            )
        if m.aspect_ratio:
            ratio = nearest_aspect_ratio(image.width, image.height)
            body["aspect_ratio"] = ratio
            notes.append(
                f"aspect_ratio {ratio!r} sent: {m.family} picks its output size from an aspect ratio, "
                f"the nearest to the prepared {image.width}x{image.height} source"
            )
        seed = request.seed
        if seed > m.max_seed:
            notes.append(f"seed {seed} clamped to {m.max_seed}: the largest seed {m.family} takes")
            seed = m.max_seed
        body["seed"] = seed
        body["output_format"] = "png"
        notes.extend(dropped_field_notes(request, self._dropped()))
        return ModelCall(body=body, notes=tuple(notes))

    def _text(self, request: ImageToImageRequest, notes: list[str]) -> dict[str, Any]:
        """The body's prompt, negative prompt and style, checked against the model's limits."""
        m = self.model
        prompt, negative = self._prompts(request, notes)
        if not prompt:
            raise InvalidRequest(
                f"{m.family} needs a prompt",
                [
                    FieldError(
                        "text_prompts",
                        f"{m.family} needs at least one non-empty prompt with a positive weight",
                    )
                ],
            )
        require_length(prompt, m.max_prompt_chars, m.family, "prompt")
        body: dict[str, Any] = {"prompt": prompt}
        if m.native_style_presets:
            if request.style_preset is not None:
                body["style_preset"] = request.style_preset
        else:
            body["prompt"], style_note = with_style(prompt, request, m.family, m.max_prompt_chars)
            notes.extend([style_note] if style_note else [])
        if negative:
            require_length(negative, m.max_prompt_chars, m.family, "negative prompt")
            body["negative_prompt"] = negative
        return body

    def _prompts(self, request: ImageToImageRequest, notes: list[str]) -> tuple[str, str]:
        """(prompt, negative_prompt). Weights other than 1 become `(text:weight)` where the
        model reads that syntax; otherwise they are dropped, each with a note."""
        if not self.model.prompt_weights:
            notes.extend(weight_notes(request, self.family))
            return join_prompts(request.positive_prompts), join_prompts(request.negative_prompts)
        positive: list[str] = []
        negative: list[str] = []
        for index, prompt in enumerate(request.text_prompts):
            text, weight = prompt.text.strip(), abs(prompt.weight)
            if weight == 0:
                notes.append(f"text_prompts[{index}] has weight 0 and was dropped")
                continue
            if not text:
                continue
            if weight != 1.0:
                side = "prompt" if prompt.weight > 0 else "negative_prompt"
                if weight > MAX_PROMPT_WEIGHT:
                    notes.append(
                        f"text_prompts[{index}] weight {prompt.weight:g} capped at {MAX_PROMPT_WEIGHT:g}: "
                        f"the largest {self.family} documents"
                    )
                    weight = MAX_PROMPT_WEIGHT
                text = f"({text}:{weight:g})"
                notes.append(
                    f"text_prompts[{index}] weight {prompt.weight:g} written as {text[:40]!r} in {side}"
                )
            (positive if prompt.weight > 0 else negative).append(text)
        return PROMPT_SEPARATOR.join(positive), PROMPT_SEPARATOR.join(negative)

    def _dropped(self) -> dict[str, str]:
        f = self.family
        return {
            "cfg_scale": f"{f} has no cfg_scale",
            "sampler": f"{f} picks its own sampler",
            "steps": f"{f} has no steps setting",
            "clip_guidance_preset": f"{f} has no CLIP guidance",
            "extras": f"{f} takes no extra parameters",
            "step_schedule_end": f"{f} has no schedule end, only {self.model.strength_field}",
        }

    # --- the answer -----------------------------------------------------------------------

    def parse_response(self, payload: dict[str, Any], call: ModelCall) -> Artifact:
        f = self.family
        reasons = payload.get("finish_reasons")
        if not isinstance(reasons, list) or not reasons:
            raise ModelError(f"the {f} response has no 'finish_reasons' list")
        reason = reasons[0]
        if reason is not None and not isinstance(reason, str):
            raise ModelError(f"the {f} response has a finish reason that is not text: {reason!r}")
        finish = _finish_reason(reason)
        seeds = payload.get("seeds")
        if finish == "SUCCESS" or seeds is not None:
            if not isinstance(seeds, list) or not seeds:
                raise ModelError(f"the {f} response has no 'seeds' list")
            seed = require_int(seeds[0], f, "seeds")
        else:
            # A filtered or failed answer carries no seed: report the one that was asked for.
            seed = int(call.body.get("seed", 0))
        images = payload.get("images")
        if finish == "SUCCESS" or images:
            if not isinstance(images, list) or not images:
                raise ModelError(f"the {f} response has no 'images' list")
            image = decode_image(images[0], f, "images")
        else:
            image = b""
        return Artifact(seed=seed, image=image, finish_reason=finish, detail=reason)

    # --- GET /v1/models -------------------------------------------------------------------

    def field_support(self) -> dict[str, str]:
        m = self.model
        support = dict.fromkeys(SDXL_FIELDS, "dropped")
        formula = "1 - image_strength" if m.strength_sense == "change" else "image_strength"
        weights = "weights other than 1 written as (text:weight)" if m.prompt_weights else "weights dropped"
        support.update(
            text_prompts=f"positive texts joined into prompt, negative into negative_prompt; {weights}",
            init_image="sent as image",
            init_image_mode=f"both modes mapped to {m.strength_field}",
            image_strength=f"mapped to {m.strength_field} = {formula} ({m.strength_meaning})",
            step_schedule_start=(
                f"mapped to {m.strength_field} = "
                + ("step_schedule_start" if m.strength_sense == "change" else "1 - step_schedule_start")
            ),
            samples="always 1",
            seed=(
                f"passed through; above {m.max_seed} clamped to {m.max_seed}; 0 = random"
                if m.max_seed < 4_294_967_295
                else "passed through; 0 = random"
            ),
            style_preset=(
                "passed through as style_preset"
                if m.native_style_presets
                else "approximated: the style's words appended to the prompt"
            ),
        )
        return support


def nearest_aspect_ratio(width: int, height: int) -> str:
    ratio = width / height
    return min(ASPECT_RATIOS, key=lambda name: abs(ASPECT_RATIOS[name] - ratio))


def _finish_reason(reason: str | None) -> FinishReason:
    if reason is None:
        return "SUCCESS"
    if reason.startswith(FILTER_PREFIX):
        return "CONTENT_FILTERED"
    return "ERROR"
