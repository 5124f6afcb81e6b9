"""Which model runs a request: the caller's `model_id` if this environment allows it, else
the environment's default. Checked before anything is stored or called."""

from __future__ import annotations

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.domain.request import ImageToImageRequest


def resolve_model_id(request: ImageToImageRequest, allowed: tuple[str, ...], default: str) -> str:
    model_id = request.model_id or default
    if model_id not in allowed:
        raise InvalidRequest(
            f"model {model_id!r} is not enabled in this environment",
            [FieldError("model_id", f"must be one of: {', '.join(allowed)}")],
        )
    return model_id
