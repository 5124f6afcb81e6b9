"""The lifecycle watch's verdict: where each configured model stands in Bedrock's lifecycle.

Bedrock moves a model from ACTIVE to LEGACY months before its end of life, and after that every
call answers ResourceNotFoundException. The watch reads that state ahead of time so a person
can change cdk.json before jobs start failing (or falling back). Pure: the lookup is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from img2img.catalog import base_model_id

LifecycleStatus = Literal["ACTIVE", "LEGACY", "GONE", "UNKNOWN"]
# States that need a person: LEGACY has an end-of-life date, GONE fails every call now.
NOT_ACTIVE: frozenset[str] = frozenset({"LEGACY", "GONE"})


@dataclass(frozen=True)
class ModelStatus:
    """One model's state. UNKNOWN means the state could not be read (access denied,
    throttled, unreachable); `detail` says why, so it is never mistaken for ACTIVE."""

    model_id: str  # the base (foundation) model id GetFoundationModel was asked about
    status: LifecycleStatus
    detail: str
    end_of_life: str | None = None  # ISO 8601, when Bedrock has announced one

    @property
    def not_active(self) -> bool:
        return self.status in NOT_ACTIVE


@dataclass(frozen=True)
class LifecycleReport:
    models: tuple[ModelStatus, ...]

    @property
    def not_active(self) -> int:
        return sum(1 for model in self.models if model.not_active)

    @property
    def unknown(self) -> int:
        return sum(1 for model in self.models if model.status == "UNKNOWN")

    def to_dict(self) -> dict[str, Any]:
        return {
            "not_active": self.not_active,
            "unknown": self.unknown,
            "models": [asdict(model) for model in self.models],
        }


def configured_base_ids(model_ids: Iterable[str]) -> tuple[str, ...]:
    """The foundation models behind `model_ids`, first occurrence first: `us.<id>` and `<id>`
    are one model, and GetFoundationModel only takes the base id."""
    return tuple(dict.fromkeys(base_model_id(model_id) for model_id in model_ids))


def check_models(model_ids: Iterable[str], lookup: Callable[[str], ModelStatus]) -> LifecycleReport:
    """Look up each configured model once (`us.<id>` and `<id>` are one model), by the id first
    configured for it: a profile id lets the lookup ask for the profile where the base model
    cannot be read. `lookup` does not raise: a model whose state cannot be read comes back
    UNKNOWN and the others are still checked."""
    first: dict[str, str] = {}
    for model_id in model_ids:
        first.setdefault(base_model_id(model_id), model_id)
    return LifecycleReport(tuple(lookup(model_id) for model_id in first.values()))
