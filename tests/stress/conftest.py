"""The long runs of `make stress`. `make test` collects this folder too (it runs `pytest tests`),
so each module here skips itself, saying why, unless IMG2IMG_STRESS=1 (which make stress sets)."""

from __future__ import annotations

import os

import pytest

STRESS = os.environ.get("IMG2IMG_STRESS") == "1"


def require_stress() -> None:
    if not STRESS:
        pytest.skip("a long run (minutes): `make stress` runs it (IMG2IMG_STRESS=1)", allow_module_level=True)
