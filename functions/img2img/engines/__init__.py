"""The engine registry: which engine translates the SDXL body for a Bedrock model id.
Adding a model family = one module in this package + one line in `_ENGINES`."""

from __future__ import annotations

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.engines.base import Engine
from img2img.engines.nova import nova_canvas, titan_image_v2
from img2img.engines.sd3 import Sd3Engine
from img2img.engines.sdxl import SdxlEngine

_ENGINES: tuple[Engine, ...] = (SdxlEngine(), Sd3Engine(), nova_canvas(), titan_image_v2())
_BY_MODEL_ID: dict[str, Engine] = {model_id: engine for engine in _ENGINES for model_id in engine.model_ids}

# Cross-region (system-defined) inference profiles put a geography before the model id.
INFERENCE_PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")


def supported_model_ids() -> tuple[str, ...]:
    return tuple(_BY_MODEL_ID)


def base_model_id(model_id: str) -> str:
    """The foundation model id behind a model id, an inference profile id (`us.<id>`) or the
    ARN of either (`arn:aws:bedrock:...:foundation-model/<id>`, `...:inference-profile/us.<id>`)."""
    resource = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    prefix, dot, rest = resource.partition(".")
    if dot and prefix in INFERENCE_PROFILE_PREFIXES:
        return rest
    return resource


def engine_for(model_id: str) -> Engine:
    engine = _BY_MODEL_ID.get(base_model_id(model_id))
    if engine is None:
        prefixes = ", ".join(f"{p}." for p in INFERENCE_PROFILE_PREFIXES)
        raise InvalidRequest(
            f"model {model_id!r} is not supported",
            [
                FieldError(
                    "model_id",
                    f"supported models: {', '.join(supported_model_ids())} "
                    f"(also behind an inference profile prefix: {prefixes})",
                )
            ],
        )
    return engine
