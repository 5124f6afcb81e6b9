"""Fault settings of the Bedrock emulator: what to break, how often, and for which models.
Read from `IMG2IMG_EMULATOR_*` variables, keyword arguments or `POST /_emulator/faults`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

ENV_PREFIX = "IMG2IMG_EMULATOR_"


@dataclass(frozen=True)
class EmulatorFaults:
    latency_ms: int = 0
    throttle_first: int = 0
    unavailable_first: int = 0
    timeout_first: int = 0
    fail_first: int = 0
    model_error_first: int = 0
    filter_word: str | None = None
    retired_models: frozenset[str] = frozenset()
    denied_models: frozenset[str] = frozenset()
    legacy_models: frozenset[str] = frozenset()  # GetFoundationModel says LEGACY; still served

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EmulatorFaults:
        settings = {
            f.name: environ[ENV_PREFIX + f.name.upper()]
            for f in fields(cls)
            if ENV_PREFIX + f.name.upper() in environ
        }
        return cls().updated(settings)

    def updated(self, settings: Mapping[str, Any]) -> EmulatorFaults:
        """A copy with `settings` applied; raises ValueError naming a bad or unknown setting."""
        known = {f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, value in settings.items():
            if name not in known:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(sorted(known))}")
            changes[name] = _fault_value(name, value)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["retired_models"] = sorted(self.retired_models)
        data["denied_models"] = sorted(self.denied_models)
        data["legacy_models"] = sorted(self.legacy_models)
        return data


def _fault_value(name: str, value: Any) -> Any:
    if name in ("retired_models", "denied_models", "legacy_models"):
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValueError(f"{name} must be a comma-separated string or a list of model ids")
        return frozenset(str(item).strip() for item in value if str(item).strip())
    if name == "filter_word":
        return str(value) if value not in (None, "") else None
    # Whole numbers, from JSON (int) or from the environment (str).
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CountedFault:
    counter: str
    status: int
    error: str
    message: str


# Front-door faults hit attempts; model faults hit invocations (after validation).
FRONT_FAULTS = (
    CountedFault(
        "throttle_first", 429, "ThrottlingException", "Too many requests, please wait before trying again."
    ),
    CountedFault(
        "unavailable_first", 503, "ServiceUnavailableException", "Service is temporarily unavailable."
    ),
)
MODEL_FAULTS = (
    CountedFault(
        "timeout_first", 408, "ModelTimeoutException", "Model has timed out in processing the request."
    ),
    CountedFault("fail_first", 500, "InternalServerException", "The server encountered an internal error."),
    CountedFault("model_error_first", 424, "ModelErrorException", "The model failed to process the request."),
)
