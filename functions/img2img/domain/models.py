"""Which model runs a request, and which models may take over when it is gone.

The caller's `model_id` if this environment allows it, else the environment's default.
A model Bedrock has retired is refused here, before anything is stored or called, with its
end-of-life date and the id to set instead."""

from __future__ import annotations

from img2img.catalog import retirement
from img2img.domain.errors import FieldError, InvalidRequest, ModelUnavailable
from img2img.domain.request import ImageToImageRequest


def resolve_model_id(request: ImageToImageRequest, allowed: tuple[str, ...], default: str) -> str:
    model_id = request.model_id or default
    retired = retirement(model_id)
    if retired is not None:
        raise ModelUnavailable(retired.message(model_id), [FieldError("model_id", "end of life")])
    if model_id not in allowed:
        raise InvalidRequest(
            f"model {model_id!r} is not enabled in this environment",
            [FieldError("model_id", f"must be one of: {', '.join(allowed)}")],
        )
    return model_id


def model_chain(model_id: str, fallbacks: tuple[str, ...]) -> tuple[str, ...]:
    """The models a job may run on, in order: its own, then each fallback once. Retired
    fallbacks are left out (they could only answer end of life)."""
    rest = tuple(m for m in fallbacks if m != model_id and retirement(m) is None)
    return (model_id, *rest)
