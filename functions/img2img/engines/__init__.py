"""The engine registry: which engine translates the SDXL body for a Bedrock model id.
Adding a model = one module in this package + one line in `_ENGINES`.

Only live models have engines. Retired ids are refused before this registry is asked (see
img2img.catalog), so their engines went with them: SDXL 1.0 (the contract's own shape) too,
since no model Bedrock still serves takes the SDXL body."""

from __future__ import annotations

from img2img.catalog import INFERENCE_PROFILE_PREFIXES, base_model_id
from img2img.domain.errors import FieldError, InvalidRequest
from img2img.domain.ports import Engine
from img2img.engines.control import control_sketch, control_structure
from img2img.engines.sd3 import sd3_5_large
from img2img.engines.style_guide import style_guide
from img2img.engines.ultra import stable_image_ultra

_ENGINES: tuple[Engine, ...] = (
    sd3_5_large(),
    stable_image_ultra(),
    control_structure(),
    control_sketch(),
    style_guide(),
)
# Keyed by base model id: `us.<id>`, `eu.<id>` and ARNs resolve to the same engine.
_BY_BASE_ID: dict[str, Engine] = {
    base_model_id(model_id): engine for engine in _ENGINES for model_id in engine.model_ids
}


def supported_model_ids() -> tuple[str, ...]:
    """The ids as one configures them (profile-only models with their `us.` prefix)."""
    return tuple(model_id for engine in _ENGINES for model_id in engine.model_ids)


def engine_for(model_id: str) -> Engine:
    engine = _BY_BASE_ID.get(base_model_id(model_id))
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
