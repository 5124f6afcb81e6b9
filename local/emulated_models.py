"""The model families the Bedrock emulator serves: each checks a body by its own documented
rules (bedrock-facts.md sections 1 and 3) and answers in its own response shape. The images are
stand-ins from emulated_image, NOT model output."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from img2img_local import emulated_checks as check
from img2img_local.emulated_checks import BodyError
from img2img_local.emulated_image import blurred, encode, render


@dataclass(frozen=True)
class Job:
    """A validated body, reduced to what the stand-in image needs."""

    source: Image.Image
    keep: float  # share of the source kept in the result, 0..1
    seed: int  # 0 with `zero_is_random` models: pick one
    prompt: str
    size: tuple[int, int]  # output width, height
    style: str | None = None
    output_format: str = "png"
    count: int = 1


class EmulatedModel(Protocol):
    family: str
    max_seed: int
    zero_is_random: bool

    def parse(self, raw: object) -> Job: ...

    def respond(self, job: Job, seeds: list[int], images: list[str], filtered: bool) -> dict[str, Any]: ...


def run(
    model: EmulatedModel, job: Job, rng: random.Random, filter_word: str | None
) -> tuple[dict[str, Any], bool]:
    """Make the stand-in image(s) and the family's response. Returns (payload, filtered)."""
    seed = job.seed if job.seed or not model.zero_is_random else rng.randint(1, model.max_seed)
    filtered = bool(filter_word) and str(filter_word).lower() in job.prompt.lower()
    seeds = [min(seed + index, model.max_seed) for index in range(job.count)]
    images = []
    for one_seed in seeds:
        picture = render(
            job.source, keep=job.keep, seed=one_seed, prompt=job.prompt, size=job.size, style=job.style
        )
        picture = blurred(picture) if filtered else picture
        images.append(base64.b64encode(encode(picture, job.output_format)).decode("ascii"))
    return model.respond(job, seeds, images, filtered), filtered


# --- Stability SDXL 1.0 ----------------------------------------------------------------------

SDXL_SIZES = frozenset(
    {
        (1024, 1024),
        (1152, 896),
        (1216, 832),
        (1344, 768),
        (1536, 640),
        (640, 1536),
        (768, 1344),
        (832, 1216),
        (896, 1152),
    }
)
SDXL_KEYS = (
    "text_prompts", "init_image", "init_image_mode", "image_strength", "step_schedule_start",
    "step_schedule_end", "cfg_scale", "clip_guidance_preset", "sampler", "samples", "seed", "steps",
    "style_preset", "extras",
)  # fmt: skip
CLIP_PRESETS = ("FAST_BLUE", "FAST_GREEN", "NONE", "SIMPLE", "SLOW", "SLOWER", "SLOWEST")
SAMPLERS = (
    "DDIM", "DDPM", "K_DPMPP_2M", "K_DPMPP_2S_ANCESTRAL", "K_DPM_2", "K_DPM_2_ANCESTRAL", "K_EULER",
    "K_EULER_ANCESTRAL", "K_HEUN", "K_LMS",
)  # fmt: skip
STYLE_PRESETS = (
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami",
    "photographic", "pixel-art", "tile-texture",
)  # fmt: skip


class Sdxl:
    family = "sdxl"
    max_seed = 4_294_967_295
    zero_is_random = True

    def parse(self, raw: object) -> Job:
        body = check.as_object(raw, "")
        check.only_keys(body, SDXL_KEYS, "")
        prompts = check.required(body.get("text_prompts"), "text_prompts")
        if not isinstance(prompts, list) or not prompts:
            raise BodyError("text_prompts", "expected a non-empty array of {text, weight}")
        positive = []
        for index, item in enumerate(prompts):
            path = f"text_prompts/{index}/"
            item = check.as_object(item, path.rstrip("/"))
            check.only_keys(item, ("text", "weight"), path)
            text = check.required(check.string(item, "text", path, max_len=2000), path + "text")
            weight = check.number(item, "weight", path, float("-inf"), float("inf"))
            if weight is None or weight > 0:
                positive.append(text)
        if not positive:
            raise BodyError("text_prompts", "at least one prompt must have a positive weight")
        source = check.image(check.required(body.get("init_image"), "init_image"), "init_image", ("PNG",))
        if source.size not in SDXL_SIZES:
            allowed = ", ".join(f"{w}x{h}" for w, h in sorted(SDXL_SIZES))
            raise BodyError(
                "init_image", f"invalid_sdxl_v1_dimensions {source.width}x{source.height}; allowed: {allowed}"
            )
        mode = (
            check.choice(body, "init_image_mode", "", ("IMAGE_STRENGTH", "STEP_SCHEDULE")) or "IMAGE_STRENGTH"
        )
        strength = check.number(body, "image_strength", "", 0, 1)
        start = check.number(body, "step_schedule_start", "", 0, 1)
        end = check.number(body, "step_schedule_end", "", 0, 1)
        if start is not None and end is not None and end < start:
            raise BodyError("step_schedule_end", "must be greater than or equal to step_schedule_start")
        check.number(body, "cfg_scale", "", 0, 35)
        clip = check.choice(body, "clip_guidance_preset", "", CLIP_PRESETS)
        sampler = check.choice(body, "sampler", "", SAMPLERS)
        if clip not in (None, "NONE") and not (sampler or "").endswith("_ANCESTRAL"):
            raise BodyError("clip_guidance_preset", "CLIP guidance is only supported with ancestral samplers")
        check.integer(body, "samples", "", 1, 1)
        seed = check.integer(body, "seed", "", 0, self.max_seed) or 0
        check.integer(body, "steps", "", 10, 50)
        style = check.choice(body, "style_preset", "", STYLE_PRESETS)
        if "extras" in body:
            check.as_object(body["extras"], "extras")
        keep = (
            (0.35 if strength is None else strength)
            if mode == "IMAGE_STRENGTH"
            else 1 - (0.65 if start is None else start)
        )
        return Job(source, keep, seed, " ".join(positive), source.size, style)

    def respond(self, job: Job, seeds: list[int], images: list[str], filtered: bool) -> dict[str, Any]:
        reason = "CONTENT_FILTERED" if filtered else "SUCCESS"
        artifacts = [
            {"seed": s, "base64": b, "finishReason": reason} for s, b in zip(seeds, images, strict=True)
        ]
        return {"result": "success", "artifacts": artifacts}


# --- Stable Diffusion 3.5 Large --------------------------------------------------------------


class Sd3:
    family = "sd3"
    max_seed = 4_294_967_294
    zero_is_random = True

    def parse(self, raw: object) -> Job:
        body = check.as_object(raw, "")
        keys = (
            "prompt",
            "negative_prompt",
            "mode",
            "image",
            "strength",
            "seed",
            "output_format",
            "aspect_ratio",
        )
        check.only_keys(body, keys, "")
        prompt = check.required(check.string(body, "prompt", "", min_len=1, max_len=10_000), "prompt")
        check.string(body, "negative_prompt", "", max_len=10_000)
        mode = check.choice(body, "mode", "", ("text-to-image", "image-to-image")) or "text-to-image"
        if mode != "image-to-image":
            raise BodyError("mode", "the emulator serves image-to-image only")
        if "aspect_ratio" in body:
            raise BodyError("aspect_ratio", "not allowed with mode image-to-image")
        source = check.image(check.required(body.get("image"), "image"), "image", ("PNG", "JPEG", "WEBP"))
        if min(source.size) < 64:
            raise BodyError(
                "image", f"every side must be at least 64 pixels, got {source.width}x{source.height}"
            )
        if max(source.width / source.height, source.height / source.width) > 2.5:
            raise BodyError("image", "aspect ratio must be between 1:2.5 and 2.5:1")
        strength = check.required(check.number(body, "strength", "", 0, 1), "strength")
        seed = check.integer(body, "seed", "", 0, self.max_seed) or 0
        output_format = check.choice(body, "output_format", "", ("png", "jpeg")) or "png"
        return Job(source, 1 - strength, seed, prompt, source.size, output_format=output_format)

    def respond(self, job: Job, seeds: list[int], images: list[str], filtered: bool) -> dict[str, Any]:
        reason = "Filter reason: prompt" if filtered else None
        return {"seeds": seeds, "finish_reasons": [reason] * len(seeds), "images": images}


# --- Amazon Nova Canvas / Titan Image Generator v2, IMAGE_VARIATION ---------------------------

TITAN_SIZES = frozenset(
    {
        (1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384),
        (768, 1280), (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896),
        (576, 448), (768, 1408), (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704),
        (1408, 640), (704, 320), (1152, 640), (1173, 640),
    }
)  # fmt: skip
CONTENT_FILTER_MESSAGE = (
    "This request has been blocked by our content filters. "
    "Please adjust your text prompt to submit a new request."
)


class ImageVariation:
    max_seed = 2_147_483_646
    zero_is_random = False  # 0 is an ordinary seed here; an absent seed means 42

    def __init__(self, family: str, max_text: int, sizes: frozenset[tuple[int, int]] | None) -> None:
        self.family = family
        self._max_text = max_text
        self._sizes = sizes  # None: Nova's size rules instead of a list

    def parse(self, raw: object) -> Job:
        body = check.as_object(raw, "")
        check.only_keys(body, ("taskType", "imageVariationParams", "imageGenerationConfig"), "")
        task = check.required(body.get("taskType"), "taskType")
        if task != "IMAGE_VARIATION":
            raise BodyError("taskType", f"{task!r}: the emulator serves IMAGE_VARIATION only")
        params = check.as_object(
            check.required(body.get("imageVariationParams"), "imageVariationParams"), "imageVariationParams"
        )
        p = "imageVariationParams/"
        check.only_keys(params, ("images", "text", "negativeText", "similarityStrength"), p)
        images = check.required(params.get("images"), p + "images")
        if not isinstance(images, list) or not 1 <= len(images) <= 5:
            raise BodyError(p + "images", "expected an array of 1..5 base64 images")
        sources = [check.image(item, f"{p}images/{i}", ("PNG", "JPEG")) for i, item in enumerate(images)]
        text = check.string(params, "text", p, min_len=1, max_len=self._max_text) or ""
        check.string(params, "negativeText", p, min_len=1, max_len=self._max_text)
        similarity = check.number(params, "similarityStrength", p, 0.2, 1.0)
        config = check.as_object(body.get("imageGenerationConfig") or {}, "imageGenerationConfig")
        c = "imageGenerationConfig/"
        check.only_keys(config, ("numberOfImages", "width", "height", "cfgScale", "seed", "quality"), c)
        count = check.integer(config, "numberOfImages", c, 1, 5) or 1
        check.number(config, "cfgScale", c, 1.1, 10)
        check.choice(config, "quality", c, ("standard", "premium"))
        seed = check.integer(config, "seed", c, 0, self.max_seed)
        size = self._size(config, c)
        keep = 0.7 if similarity is None else similarity
        return Job(sources[0], keep, 42 if seed is None else seed, text, size, count=count)

    def respond(self, job: Job, seeds: list[int], images: list[str], filtered: bool) -> dict[str, Any]:
        if filtered:
            return {"images": [], "error": CONTENT_FILTER_MESSAGE}
        return {"images": images}

    def _size(self, config: dict[str, Any], path: str) -> tuple[int, int]:
        width = check.integer(config, "width", path, 320, 4096)
        height = check.integer(config, "height", path, 320, 4096)
        if width is None or height is None:
            if width is not None or height is not None:
                missing = "height" if height is None else "width"
                raise BodyError(path + missing, "width and height must be given together")
            return 1024, 1024
        if self._sizes is not None:
            if (width, height) not in self._sizes:
                raise BodyError(path + "width", f"{width}x{height} is not a supported {self.family} size")
            return width, height
        if width % 16 or height % 16:
            raise BodyError(path + "width", "width and height must be multiples of 16")
        if width * height > 4_194_304:
            raise BodyError(path + "width", "width x height must be at most 4194304 pixels")
        if max(width / height, height / width) > 4:
            raise BodyError(path + "width", "the aspect ratio must be between 1:4 and 4:1")
        return width, height


MODELS: dict[str, EmulatedModel] = {
    "stability.stable-diffusion-xl-v1": Sdxl(),
    "stability.sd3-5-large-v1:0": Sd3(),
    "amazon.nova-canvas-v1:0": ImageVariation("nova", max_text=1024, sizes=None),
    "amazon.titan-image-generator-v2:0": ImageVariation("titan", max_text=512, sizes=TITAN_SIZES),
}
GEOGRAPHY_PREFIXES = ("us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")


def base_id(model_id: str) -> str:
    """The foundation model behind an id, a cross-region inference profile id or an ARN."""
    if model_id.startswith("arn:"):
        model_id = model_id.rsplit("/", 1)[-1]
    for prefix in GEOGRAPHY_PREFIXES:
        if model_id.startswith(prefix) and model_id[len(prefix) :] in MODELS:
            return model_id[len(prefix) :]
    return model_id
