"""Amazon Nova Canvas and Titan Image Generator v2, task IMAGE_VARIATION. Both take one text
and one negative text (no weights), a similarity instead of an image strength, a cfgScale in
1.1..10 and a seed in 0..2147483646; neither reports the seed it used. They differ in prompt
length (Nova 1024 characters, Titan 512) and output sizes (Nova: any size within its rules,
Titan: a fixed list)."""

from __future__ import annotations

import math
import random
from typing import Any

from img2img.domain.errors import FieldError, InvalidRequest, ModelError
from img2img.domain.imaging import PreparedImage
from img2img.domain.request import ImageToImageRequest
from img2img.engines.base import Artifact, FinishReason, ModelCall
from img2img.engines.responses import decode_image
from img2img.engines.translation import (
    SDXL_FIELDS,
    dropped_field_notes,
    image_base64,
    join_prompts,
    require_length,
    weight_notes,
    with_style,
)

MAX_SEED = 2_147_483_646
MIN_CFG, MAX_CFG = 1.1, 10.0
MIN_SIMILARITY = 0.2

# Titan Image Generator's documented output sizes (width, height).
TITAN_SIZES: tuple[tuple[int, int], ...] = (
    (1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384),
    (768, 1280), (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896),
    (576, 448), (768, 1408), (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704),
    (1408, 640), (704, 320), (1152, 640), (1173, 640),
)  # fmt: skip

_NOT_SUPPORTED = {
    "sampler": "{family} picks its own sampler",
    "steps": "{family} has no steps setting",
    "clip_guidance_preset": "{family} has no CLIP guidance",
    "extras": "{family} takes no extra parameters",
    "step_schedule_end": "{family} has no schedule end, only similarityStrength",
}


def similarity_strength(image_strength: float) -> float:
    """SDXL's image_strength 0..1 mapped linearly onto the similarity range 0.2..1.0: both say
    "how close to the source", but a variation can never ignore its source entirely, so the
    bottom 0..0.2 of SDXL's range has no equivalent and lands on 0.2."""
    return round(MIN_SIMILARITY + (1.0 - MIN_SIMILARITY) * image_strength, 4)


class ImageVariationEngine:
    def __init__(
        self,
        family: str,
        model_id: str,
        max_text_chars: int,
        sizes: tuple[tuple[int, int], ...] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.family = family
        self.model_ids: tuple[str, ...] = (model_id,)
        self._max_text = max_text_chars
        self._sizes = sizes  # None: any size within Nova's rules
        self._rng = rng or random.SystemRandom()

    def build_body(self, request: ImageToImageRequest, image: PreparedImage) -> ModelCall:
        notes = weight_notes(request, self.family)
        params: dict[str, Any] = {"images": [image_base64(image.png)]}
        text = join_prompts(request.positive_prompts)
        require_length(text, self._max_text, self.family, "prompt")
        text, style_note = with_style(text, request, self.family, self._max_text)
        notes.extend([style_note] if style_note else [])
        if text:
            params["text"] = text
        negative = join_prompts(request.negative_prompts)
        if negative:
            require_length(negative, self._max_text, self.family, "negative prompt")
            params["negativeText"] = negative
        strength = request.effective_image_strength
        params["similarityStrength"] = similarity_strength(strength)
        notes.append(
            f"image_strength {strength:g} mapped to similarityStrength {params['similarityStrength']:g} "
            f"(0.2 + 0.8 x image_strength: {self.family} keeps at least 0.2 of the source)"
        )
        width, height = self._output_size(image, notes)
        config = {
            "numberOfImages": 1,
            "width": width,
            "height": height,
            "cfgScale": self._cfg_scale(request.cfg_scale, notes),
            "seed": self._seed(request.seed, notes),
        }
        reasons = {name: reason.format(family=self.family) for name, reason in _NOT_SUPPORTED.items()}
        notes.extend(dropped_field_notes(request, reasons))
        body = {
            "taskType": "IMAGE_VARIATION",
            "imageVariationParams": params,
            "imageGenerationConfig": config,
        }
        return ModelCall(body=body, notes=tuple(notes))

    def parse_response(self, payload: dict[str, Any], call: ModelCall) -> Artifact:
        # The model does not report its seed: the one sent is the one used.
        seed = int(call.body["imageGenerationConfig"]["seed"])
        error = payload.get("error")
        if error is not None:
            if not isinstance(error, str):
                raise ModelError(f"the {self.family} response's error is not text: {error!r}")
            # The response carries no error code; the content-moderation text is the only signal.
            finish: FinishReason = "CONTENT_FILTERED" if "content filter" in error.lower() else "ERROR"
            images = payload.get("images")
            image = b""
            if isinstance(images, list) and images:
                image = decode_image(images[0], self.family, "images")
            return Artifact(seed=seed, image=image, finish_reason=finish, detail=error)
        images = payload.get("images")
        if not isinstance(images, list) or not images:
            raise ModelError(f"the {self.family} response has no 'images' list")
        image = decode_image(images[0], self.family, "images")
        return Artifact(seed=seed, image=image, finish_reason="SUCCESS")

    def field_support(self) -> dict[str, str]:
        support = dict.fromkeys(SDXL_FIELDS, "dropped")
        support.update(
            text_prompts=(
                "positive texts joined into text, negative into negativeText "
                f"(<= {self._max_text} characters each); weights dropped"
            ),
            init_image="sent as imageVariationParams.images[0]",
            init_image_mode="both modes mapped to similarityStrength",
            image_strength="mapped to similarityStrength = 0.2 + 0.8 x image_strength",
            step_schedule_start="mapped to similarityStrength = 0.2 + 0.8 x (1 - step_schedule_start)",
            cfg_scale=f"passed as cfgScale, clamped to {MIN_CFG:g}..{MAX_CFG:g}",
            samples="always 1 (numberOfImages)",
            seed=(
                f"passed through up to {MAX_SEED}, larger ones folded into range; "
                "0 = a random seed picked by the service and reported"
            ),
            style_preset="approximated: the style's words appended to the text when they fit",
        )
        return support

    def _output_size(self, image: PreparedImage, notes: list[str]) -> tuple[int, int]:
        size = (image.width, image.height)
        if self._sizes is None:
            _check_nova_size(*size)
            return size
        if size in self._sizes:
            return size
        chosen = nearest_size(size, self._sizes)
        notes.append(
            f"output size {chosen[0]}x{chosen[1]} instead of {size[0]}x{size[1]}: "
            f"{self.family} generates only fixed sizes, the one nearest in aspect ratio was chosen"
        )
        return chosen

    def _cfg_scale(self, cfg_scale: float, notes: list[str]) -> float:
        clamped = min(max(cfg_scale, MIN_CFG), MAX_CFG)
        if clamped != cfg_scale:
            notes.append(
                f"cfg_scale {cfg_scale:g} clamped to {clamped:g}: "
                f"{self.family} takes {MIN_CFG:g}..{MAX_CFG:g}"
            )
        return clamped

    def _seed(self, seed: int, notes: list[str]) -> int:
        if seed == 0:
            # SDXL's 0 means "random", Nova's 0 is a fixed seed: pick one (never 0, so that
            # sending the reported seed back reproduces the image).
            picked = self._rng.randint(1, MAX_SEED)
            notes.append(f"seed 0 (random): {self.family} has no random seed, the service picked {picked}")
            return picked
        if seed > MAX_SEED:
            folded = (seed - 1) % MAX_SEED + 1
            notes.append(f"seed {seed} folded to {folded}: {self.family} takes seeds up to {MAX_SEED}")
            return folded
        return seed


def nearest_size(size: tuple[int, int], sizes: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """The listed size closest in aspect ratio (then in area) to `size`."""
    ratio = math.log(size[0] / size[1])
    area = size[0] * size[1]
    return min(sizes, key=lambda s: (round(abs(math.log(s[0] / s[1]) - ratio), 6), abs(s[0] * s[1] - area)))


def _check_nova_size(width: int, height: int) -> None:
    problems = []
    if not (320 <= width <= 4096 and 320 <= height <= 4096):
        problems.append("each side must be 320..4096 pixels")
    if width % 16 or height % 16:
        problems.append("each side must be a multiple of 16")
    if width * height > 4_194_304:
        problems.append("at most 4,194,304 pixels")
    if max(width / height, height / width) > 4:
        problems.append("aspect ratio within 1:4..4:1")
    if problems:
        raise InvalidRequest(
            f"a {width}x{height} image cannot be varied by Nova Canvas",
            [FieldError("init_image", "; ".join(problems))],
        )


def nova_canvas(rng: random.Random | None = None) -> ImageVariationEngine:
    return ImageVariationEngine("nova", "amazon.nova-canvas-v1:0", max_text_chars=1024, rng=rng)


def titan_image_v2(rng: random.Random | None = None) -> ImageVariationEngine:
    return ImageVariationEngine(
        "titan", "amazon.titan-image-generator-v2:0", max_text_chars=512, sizes=TITAN_SIZES, rng=rng
    )
