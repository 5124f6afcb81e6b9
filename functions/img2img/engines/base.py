"""What every model engine provides. An engine turns the SDXL request (the service's contract)
into one model family's InvokeModel body and that family's response back into an SDXL
artifact. It does no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from img2img.domain.imaging import PreparedImage
from img2img.domain.request import ImageToImageRequest
from img2img.vocabulary import FinishReason


@dataclass(frozen=True)
class ModelCall:
    body: dict[str, Any]  # the InvokeModel body, JSON-serialisable
    notes: tuple[str, ...] = field(default_factory=tuple)  # every field approximated or dropped


@dataclass(frozen=True)
class Artifact:
    seed: int
    image: bytes  # decoded image bytes as the model returned them
    finish_reason: FinishReason
    detail: str | None = None  # the model's own reason text, when it gave one


class Engine(Protocol):
    family: str  # "sdxl", "sd3", "nova"
    model_ids: tuple[str, ...]  # base model ids this engine serves (no inference-profile prefix)

    def check_request(self, request: ImageToImageRequest) -> None:
        """The model's rules on the request alone, before any image is read or stored."""
        ...

    def build_body(self, request: ImageToImageRequest, image: PreparedImage) -> ModelCall: ...

    def parse_response(self, payload: dict[str, Any], call: ModelCall) -> Artifact: ...

    def field_support(self) -> dict[str, str]:
        """For GET /v1/models: each SDXL field -> what this engine does with it."""
        ...
