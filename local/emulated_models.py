"""The models the Bedrock emulator serves: each checks a body by its own documented rules
(docs/models.md, whose sources are the AWS pages) and answers in the documented shape. The
images are stand-ins from emulated_image, NOT model output.

Written apart from the service's engines on purpose (it imports nothing of img2img), and
tested against the fixtures transcribed from AWS's pages (tests/fixtures/bedrock), so that
engines and emulator are each held to AWS, not to each other."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from img2img import catalog
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
    model: EmulatedModel, job: Job, rng: random.Random, filter_word: str | None, model_id: str = ""
) -> tuple[dict[str, Any], bool]:
    """Make the stand-in image(s) and the family's response. Returns (payload, filtered)."""
    seed = job.seed if job.seed or not model.zero_is_random else rng.randint(1, model.max_seed)
    filtered = bool(filter_word) and str(filter_word).lower() in job.prompt.lower()
    seeds = [min(seed + index, model.max_seed) for index in range(job.count)]
    images = []
    for one_seed in seeds:
        picture = render(
            job.source,
            keep=job.keep,
            seed=one_seed,
            prompt=job.prompt,
            size=job.size,
            style=job.style,
            model_id=model_id,
        )
        picture = blurred(picture) if filtered else picture
        images.append(base64.b64encode(encode(picture, job.output_format)).decode("ascii"))
    return model.respond(job, seeds, images, filtered), filtered


# --- Stability models on Bedrock (SD3.5 Large, Stable Image Ultra, Image Services) ---------

STYLE_PRESETS = (
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami",
    "photographic", "pixel-art", "tile-texture",
)  # fmt: skip
ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
MAX_PIXELS = 9_437_184
FILTERED = "Filter reason: prompt"


@dataclass(frozen=True)
class StabilityRules:
    """One Stability model's request rules, as its Bedrock page documents them."""

    family: str
    strength_key: str  # "strength" (0 = keep the source) or "control_strength"/"fidelity" (1 = keep)
    strength_keeps: bool
    strength_default: float | None  # None: required (SD3.5 Large image-to-image)
    mode: bool = False  # SD3.5 Large: mode "image-to-image" / "text-to-image"
    style_preset: bool = False
    aspect_ratio_with_image: bool = False  # Style Guide: the output's aspect ratio
    formats: tuple[str, ...] = ("jpeg", "png", "webp")
    max_seed: int = 4_294_967_294


class Stability:
    zero_is_random = True

    def __init__(self, rules: StabilityRules) -> None:
        self.rules = rules
        self.family = rules.family
        self.max_seed = rules.max_seed

    def parse(self, raw: object) -> Job:
        r = self.rules
        body = check.as_object(raw, "")
        keys = ["prompt", "negative_prompt", "image", r.strength_key, "seed", "output_format", "aspect_ratio"]
        keys += ["mode"] if r.mode else []
        keys += ["style_preset"] if r.style_preset else []
        check.only_keys(body, keys, "")
        prompt = check.required(check.string(body, "prompt", "", min_len=1, max_len=10_000), "prompt")
        check.string(body, "negative_prompt", "", max_len=10_000)
        if r.mode:
            mode = check.choice(body, "mode", "", ("text-to-image", "image-to-image")) or "text-to-image"
            if mode != "image-to-image":
                raise BodyError("mode", "the emulator serves image-to-image only")
        if "aspect_ratio" in body and not r.aspect_ratio_with_image:
            raise BodyError(
                "aspect_ratio", "only for text-to-image; an image-to-image result has the image's"
            )
        ratio = check.choice(body, "aspect_ratio", "", ASPECT_RATIOS)
        source = check.image(check.required(body.get("image"), "image"), "image", ("PNG", "JPEG", "WEBP"))
        width, height = source.size
        if min(width, height) < 64:
            raise BodyError("image", f"every side must be at least 64 pixels, got {width}x{height}")
        if width * height > MAX_PIXELS:
            raise BodyError("image", f"at most {MAX_PIXELS} pixels, got {width}x{height}")
        if max(width / height, height / width) > 2.5:
            raise BodyError("image", "aspect ratio must be between 1:2.5 and 2.5:1")
        strength = check.number(body, r.strength_key, "", 0, 1)
        if strength is None and r.strength_default is None:
            raise BodyError(r.strength_key, "required with an image")
        seed = check.integer(body, "seed", "", 0, self.max_seed) or 0
        output_format = check.choice(body, "output_format", "", r.formats) or "png"
        style = check.choice(body, "style_preset", "", STYLE_PRESETS) if r.style_preset else None
        value = r.strength_default if strength is None else strength
        assert value is not None
        keep = value if r.strength_keeps else 1 - value
        size = _size_for(ratio, source.size) if ratio else source.size
        return Job(source, keep, seed, prompt, size, style, output_format=output_format)

    def respond(self, job: Job, seeds: list[int], images: list[str], filtered: bool) -> dict[str, Any]:
        if filtered:
            # As documented: a filtered call answers with the reason only, no seeds, no images.
            return {"finish_reasons": [FILTERED]}
        return {"seeds": seeds, "finish_reasons": [None] * len(seeds), "images": images}


def _size_for(ratio: str, source: tuple[int, int]) -> tuple[int, int]:
    """An output of about the source's pixel count in the asked aspect ratio."""
    w, h = (int(part) for part in ratio.split(":"))
    pixels = source[0] * source[1]
    height = round((pixels * h / w) ** 0.5 / 64) * 64 or 64
    return max(64, round(height * w / h / 64) * 64), height


SD3_5_LARGE = Stability(
    StabilityRules("sd3", "strength", strength_keeps=False, strength_default=None, mode=True)
)
# Ultra's page: seeds up to 4294967295, output JPEG or PNG only.
ULTRA = Stability(
    StabilityRules(
        "ultra", "strength", False, strength_default=0.35, formats=("jpeg", "png"), max_seed=4_294_967_295
    )
)


def _service(family: str, strength_key: str, default: float, **extra: Any) -> Stability:
    rules = StabilityRules(family, strength_key, True, strength_default=default, style_preset=True, **extra)
    return Stability(rules)


MODELS: dict[str, EmulatedModel] = {
    "stability.sd3-5-large-v1:0": SD3_5_LARGE,
    "stability.stable-image-ultra-v1:1": ULTRA,
    "stability.stable-image-control-structure-v1:0": _service("control-structure", "control_strength", 0.7),
    "stability.stable-image-control-sketch-v1:0": _service("control-sketch", "control_strength", 0.7),
    "stability.stable-image-style-guide-v1:0": _service(
        "style-guide", "fidelity", 0.5, aspect_ratio_with_image=True
    ),
}
# The Stability AI Image Services are served only through cross-region inference profiles.
PROFILE_ONLY = frozenset(
    {
        "stability.stable-image-control-structure-v1:0",
        "stability.stable-image-control-sketch-v1:0",
        "stability.stable-image-style-guide-v1:0",
    }
)
# Models Bedrock has retired: every call answers ResourceNotFoundException, end of life.
END_OF_LIFE_MODELS = frozenset(
    {
        "stability.stable-diffusion-xl-v1",
        "stability.sd3-large-v1:0",
        "stability.stable-image-ultra-v1:0",
        "stability.stable-image-core-v1:0",
        "amazon.titan-image-generator-v1",
        "amazon.titan-image-generator-v2:0",
        "amazon.nova-canvas-v1:0",
    }
)
GEOGRAPHY_PREFIXES = tuple(f"{prefix}." for prefix in catalog.INFERENCE_PROFILE_PREFIXES)


def split_profile(model_id: str) -> tuple[str | None, str]:
    """(geography prefix, foundation model) for an id, a cross-region profile id or an ARN."""
    if model_id.startswith("arn:"):
        model_id = model_id.rsplit("/", 1)[-1]
    for prefix in GEOGRAPHY_PREFIXES:
        if model_id.startswith(prefix):
            return prefix, model_id[len(prefix) :]
    return None, model_id
