"""`make deploy`'s preflight against the Bedrock emulator's GetFoundationModel: it passes live
models, warns on a LEGACY one and stops the deploy when the default is gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from img2img.adapters.model_catalog import FoundationModels
from img2img_local.bedrock_emulator import EmulatorHandle, start_emulator
from infra.preflight import main, preflight

pytestmark = pytest.mark.local

SD3 = "stability.sd3-5-large-v1:0"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with start_emulator(environ={}) as handle:
        yield handle


@pytest.fixture
def models(emulator: EmulatorHandle) -> Iterator[FoundationModels]:
    emulator.emulator.reset()
    client: Any = boto3.client(
        "bedrock",
        endpoint_url=emulator.url,
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield FoundationModels(client)


def test_live_models_pass(models: FoundationModels) -> None:
    code, lines = preflight("prod", models)
    assert code == 0 and lines[0].startswith(f"preflight: {SD3} (default) in us-west-2: ACTIVE")
    assert not any("warning" in line for line in lines)


def test_a_legacy_fallback_warns_without_stopping(emulator: EmulatorHandle, models: FoundationModels) -> None:
    emulator.emulator.set_faults(legacy_models=["stability.stable-image-ultra-v1:1"])
    code, lines = preflight("prod", models)
    assert code == 0
    assert any("stable-image-ultra-v1:1" in line and "LEGACY" in line and "warning" in line for line in lines)


def test_a_gone_default_stops_the_deploy(emulator: EmulatorHandle, models: FoundationModels) -> None:
    emulator.emulator.set_faults(retired_models=[SD3])
    code, lines = preflight("prod", models)
    assert code == 1 and "GONE" in lines[0] and "stop: set default_model_id" in lines[0]


def test_an_unknown_environment_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "has no environment 'nope'" in capsys.readouterr().err
