"""Stability SDXL 1.0: the service's own contract, so the body passes through unchanged."""

from __future__ import annotations

from typing import Any

from img2img.domain.errors import ModelError
from img2img.domain.imaging import PreparedImage
from img2img.domain.request import ImageToImageRequest
from img2img.engines.base import Artifact, FinishReason, ModelCall
from img2img.engines.responses import decode_image, first_of, require_int
from img2img.engines.translation import SDXL_FIELDS, image_base64

_FINISH_REASONS: dict[str, FinishReason] = {
    "SUCCESS": "SUCCESS",
    "ERROR": "ERROR",
    "CONTENT_FILTERED": "CONTENT_FILTERED",
}


class SdxlEngine:
    family: str = "sdxl"
    model_ids: tuple[str, ...] = ("stability.stable-diffusion-xl-v1",)

    def build_body(self, request: ImageToImageRequest, image: PreparedImage) -> ModelCall:
        return ModelCall(body={**request.bedrock_fields(), "init_image": image_base64(image.png)})

    def parse_response(self, payload: dict[str, Any], call: ModelCall) -> Artifact:
        artifact = first_of(payload, "artifacts", self.family)
        if not isinstance(artifact, dict):
            raise ModelError("the sdxl response's artifact is not an object")
        raw_reason = artifact.get("finishReason")
        reason = _FINISH_REASONS.get(raw_reason) if isinstance(raw_reason, str) else None
        if reason is None:
            raise ModelError(f"the sdxl response has an unknown finishReason {raw_reason!r}")
        seed = require_int(artifact.get("seed"), self.family, "seed")
        if reason == "SUCCESS" or artifact.get("base64"):
            image = decode_image(artifact.get("base64"), self.family, "base64")
        else:
            image = b""  # an ERROR artifact may come without an image
        detail = None if reason == "SUCCESS" else f"SDXL finishReason {reason}"
        return Artifact(seed=seed, image=image, finish_reason=reason, detail=detail)

    def field_support(self) -> dict[str, str]:
        support = dict.fromkeys(SDXL_FIELDS, "passed through")
        support["init_image"] = "passed through (the prepared PNG)"
        return support
