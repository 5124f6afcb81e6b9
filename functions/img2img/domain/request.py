"""The public request contract: the Stability SDXL 1.0 image-to-image body as Amazon Bedrock
documents it, plus a few service options. Rules follow the seed document and
shared/reference/bedrock-facts.md section 1. Unknown fields are rejected so typos surface."""

from __future__ import annotations

import json
import posixpath
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.vocabulary import INPUT_PREFIXES, UPLOADS

MAX_PROMPT_CHARS = 2000
MAX_SEED = 4294967295
# Bounds SDXL's own document leaves open. Every job record holds its request: unbounded lists
# would break DynamoDB's 400 KB item limit after the fact (as a "retryable" 500), and the live
# models take at most 10,000 characters of prompt anyway.
MAX_PROMPTS = 20
MAX_EXTRAS_BYTES = 8192
# DynamoDB stores maps at most 32 levels deep, and the job record holds extras two levels down:
# a deeper extras would be billed and then leave a record no one can read.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
MAX_EXTRAS_DEPTH = 16

ClipGuidancePreset = Literal["FAST_BLUE", "FAST_GREEN", "NONE", "SIMPLE", "SLOW", "SLOWER", "SLOWEST"]
Sampler = Literal[
    "DDIM",
    "DDPM",
    "K_DPMPP_2M",
    "K_DPMPP_2S_ANCESTRAL",
    "K_DPM_2",
    "K_DPM_2_ANCESTRAL",
    "K_EULER",
    "K_EULER_ANCESTRAL",
    "K_HEUN",
    "K_LMS",
]
StylePreset = Literal[
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
]
ResizeMode = Literal["fit", "pad", "reject"]
OutputFormat = Literal["png", "jpeg", "webp"]

# Where sources may be read from in the input bucket (the functions' roles allow no more; each
# door narrows it further: domain/caller.py).
SOURCE_PREFIXES = INPUT_PREFIXES

DEFAULT_IMAGE_STRENGTH = 0.35
DEFAULT_STEP_SCHEDULE_START = 0.65
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class TextPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    text: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
    weight: float = 1.0


class ImageToImageRequest(BaseModel):
    """One image-to-image request. Field names and rules are Bedrock's SDXL 1.0 ones."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    text_prompts: Annotated[list[TextPrompt], Field(min_length=1, max_length=MAX_PROMPTS)]
    init_image: Annotated[str | None, Field(repr=False)] = None  # megabytes of base64: never in a repr
    init_image_s3_key: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    init_image_mode: Literal["IMAGE_STRENGTH", "STEP_SCHEDULE"] = "IMAGE_STRENGTH"
    image_strength: Unit | None = None
    step_schedule_start: Unit | None = None
    step_schedule_end: Unit | None = None
    cfg_scale: Annotated[float, Field(ge=0, le=35)] = 7.0
    clip_guidance_preset: ClipGuidancePreset | None = None
    sampler: Sampler | None = None
    samples: int = 1
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    steps: Annotated[int, Field(ge=10, le=50)] = 30
    style_preset: StylePreset | None = None
    extras: dict[str, Any] | None = None

    # Service options (not Bedrock fields): which model runs it and how the image is shaped.
    model_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    resize_mode: ResizeMode = "fit"
    output_format: OutputFormat = "png"

    @field_validator("style_preset", mode="before")
    @classmethod
    def _accept_accented_anime(cls, value: object) -> object:
        # The seed document prints "animé"; the API's value is "anime".
        return "anime" if value == "animé" else value

    @field_validator("extras")
    @classmethod
    def _plain_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
        except ValueError as exc:
            raise ValueError("must be plain JSON: no NaN or Infinity") from exc
        if size > MAX_EXTRAS_BYTES:
            raise ValueError(f"must be at most {MAX_EXTRAS_BYTES} bytes of JSON; got {size}")
        if _depth(value) > MAX_EXTRAS_DEPTH:
            raise ValueError(f"must be nested at most {MAX_EXTRAS_DEPTH} levels deep")
        return value

    @field_validator("samples")
    @classmethod
    def _one_sample(cls, value: int) -> int:
        if value != 1:
            raise ValueError("Bedrock generates exactly one image: samples must be 1")
        return value

    @field_validator("init_image_s3_key")
    @classmethod
    def _key_inside_input_bucket(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "://" in value or value.startswith("arn:"):
            raise ValueError("must be a key in the input bucket, not a URI of another bucket")
        if value.startswith("/"):
            raise ValueError("must be a relative key in the input bucket, not an absolute path")
        if ".." in value.split("/") or posixpath.normpath(value) != value.rstrip("/"):
            raise ValueError("must not contain '..', '.' or empty path segments")
        if not value.startswith(SOURCE_PREFIXES):
            raise ValueError(
                f"must be the key a POST /v1/uploads ticket answered ({UPLOADS}...); a manifest may also "
                f"name {', '.join(p for p in SOURCE_PREFIXES if p != UPLOADS)}"
            )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ImageToImageRequest:
        errors = cross_field_errors(self.__dict__)
        if errors:
            raise _CrossFieldErrors(errors)
        return self

    @property
    def effective_image_strength(self) -> float:
        """How close the result stays to the source, 0..1, whichever mode the caller used."""
        if self.init_image_mode == "STEP_SCHEDULE":
            return 1.0 - self.effective_step_schedule_start
        return DEFAULT_IMAGE_STRENGTH if self.image_strength is None else self.image_strength

    @property
    def effective_step_schedule_start(self) -> float:
        if self.step_schedule_start is None:
            return DEFAULT_STEP_SCHEDULE_START
        return self.step_schedule_start

    @property
    def positive_prompts(self) -> list[TextPrompt]:
        return [p for p in self.text_prompts if p.weight > 0]

    @property
    def negative_prompts(self) -> list[TextPrompt]:
        return [p for p in self.text_prompts if p.weight < 0]

    def bedrock_fields(self) -> dict[str, Any]:
        """The SDXL body fields the caller set (or that have a default), without the source
        image and without service options: what an engine translates."""
        return self.model_dump(
            exclude_none=True,
            exclude={"init_image", "init_image_s3_key", "model_id", "resize_mode", "output_format"},
        )


def cross_field_errors(data: Mapping[str, Any]) -> list[FieldError]:
    """The rules between fields, on the values as given: a request's own, or a raw body whose
    fields broke their own rules (a value of the wrong type skips the rules it is part of),
    so that one answer names every bad field."""
    errors: list[FieldError] = []
    prompts = data.get("text_prompts")
    if isinstance(prompts, list) and prompts:
        weights = [_attr(p, "weight", 1.0) for p in prompts]
        texts = [_attr(p, "text", "") for p in prompts]
        if all(isinstance(w, int | float) for w in weights):
            positive = [t for w, t in zip(weights, texts, strict=True) if w > 0]  # type: ignore[operator]
            if not positive:
                errors.append(FieldError("text_prompts", "at least one prompt needs a positive weight"))
            elif all(isinstance(t, str) for t in positive) and not any(visible(str(t)) for t in positive):
                errors.append(
                    FieldError("text_prompts", "no prompt with a positive weight shows a character")
                )
    if (data.get("init_image") is None) == (data.get("init_image_s3_key") is None):
        errors.append(FieldError("init_image", "give exactly one of init_image or init_image_s3_key"))
    mode = data.get("init_image_mode", "IMAGE_STRENGTH")
    if mode == "IMAGE_STRENGTH":
        for name in ("step_schedule_start", "step_schedule_end"):
            if data.get(name) is not None:
                errors.append(FieldError(name, "only used with init_image_mode STEP_SCHEDULE"))
    elif mode == "STEP_SCHEDULE":
        if data.get("image_strength") is not None:
            errors.append(FieldError("image_strength", "only used with init_image_mode IMAGE_STRENGTH"))
        start = data.get("step_schedule_start")
        start = DEFAULT_STEP_SCHEDULE_START if start is None else start
        end = data.get("step_schedule_end")
        if isinstance(start, int | float) and isinstance(end, int | float) and end < start:
            errors.append(FieldError("step_schedule_end", "must be >= step_schedule_start"))
    preset, sampler = data.get("clip_guidance_preset"), data.get("sampler")
    if preset not in (None, "NONE") and not (isinstance(sampler, str) and sampler.endswith("_ANCESTRAL")):
        errors.append(
            FieldError(
                "clip_guidance_preset",
                "CLIP guidance needs an ancestral sampler (K_DPMPP_2S_ANCESTRAL, K_DPM_2_ANCESTRAL "
                "or K_EULER_ANCESTRAL)",
            )
        )
    return errors


def _attr(item: object, name: str, default: object) -> object:
    if isinstance(item, BaseModel):
        return getattr(item, name)
    return item.get(name, default) if isinstance(item, dict) else None


def visible(text: str) -> bool:
    """Whether a text shows anything: a character that is not a space, a control or a format
    character (zero-width spaces, joiners, direction marks)."""
    return any(unicodedata.category(c)[0] not in "ZC" for c in text)


def _depth(value: object) -> int:
    """How deeply JSON containers nest in `value`, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in children)
    return deepest


class _CrossFieldErrors(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def parse_request(data: object) -> ImageToImageRequest:
    """Validate a decoded JSON body. Raises InvalidRequest naming every bad field."""
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object", [FieldError("body", "not an object")])
    try:
        return ImageToImageRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(
            "the request is not a valid SDXL image-to-image body",
            with_cross_field_errors(_field_errors(exc), data),
        ) from exc


def with_cross_field_errors(details: list[FieldError], body: object) -> list[FieldError]:
    """`details` of a body whose fields failed (so the rules between fields never ran), plus
    those rules' errors on the raw body, each for a field not already named: one answer."""
    if not isinstance(body, dict):
        return details
    named = {d.field.split(".")[0] for d in details}
    return details + [e for e in cross_field_errors(body) if e.field not in named]


def _field_errors(exc: ValidationError) -> list[FieldError]:
    details: list[FieldError] = []
    for err in exc.errors(include_url=False):
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _CrossFieldErrors):
            details.extend(cause.errors)
            continue
        field = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        details.append(FieldError(field, message))
    return details
