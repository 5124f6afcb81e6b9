"""The lifecycle watch against the Bedrock emulator over loopback HTTP: the real handler and a
real boto3 `bedrock` client, with the catalogue's default model and fallbacks configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from img2img.catalog import DEFAULT_FALLBACK_MODEL_IDS, DEFAULT_MODEL_ID, base_model_id
from img2img.config import get_settings
from img2img.handlers import lifecycle
from img2img_local.bedrock_emulator import EmulatorHandle, start_emulator
from img2img_local.lambda_context import LambdaContext

pytestmark = pytest.mark.local

CONFIGURED = (DEFAULT_MODEL_ID, *DEFAULT_FALLBACK_MODEL_IDS)
EVENT = {"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-12-01T06:00:00Z"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with start_emulator(environ={}) as handle:
        yield handle


@pytest.fixture
def watch(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    emulator.emulator.reset()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Img2Img",
        "POWERTOOLS_SERVICE_NAME": "img2img",
        "IMG2IMG_ENV": "local",
        "IMG2IMG_INPUT_BUCKET": "in",
        "IMG2IMG_OUTPUT_BUCKET": "out",
        "IMG2IMG_JOBS_TABLE": "jobs",
        "IMG2IMG_ALLOWED_MODEL_IDS": DEFAULT_MODEL_ID,
        "IMG2IMG_DEFAULT_MODEL_ID": DEFAULT_MODEL_ID,
        "IMG2IMG_FALLBACK_MODEL_IDS": ",".join(DEFAULT_FALLBACK_MODEL_IDS),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    lifecycle.build(
        boto3.client(
            "bedrock",
            region_name="us-west-2",
            endpoint_url=emulator.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
    )
    yield emulator
    lifecycle.reset()
    get_settings.cache_clear()


def run(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """The handler's report and the metric values it published (EMF on stdout)."""
    context = LambdaContext(
        function_name="Img2Img-local-lifecycle",
        memory_limit_in_mb="256",
        invoked_function_arn="arn:aws:lambda:us-west-2:123456789012:function:Img2Img-local-lifecycle",
        aws_request_id="local-1",
        deadline_ms=2**62,  # no deadline
    )
    capsys.readouterr()
    report = lifecycle.handler(EVENT, context)  # type: ignore[arg-type]
    (document,) = (
        line for line in map(json.loads, filter(None, capsys.readouterr().out.splitlines())) if "_aws" in line
    )
    assert (document["service"], document["environment"]) == ("img2img", "local")
    metrics = {}
    for name in ("ModelsNotActive", "ModelLifecycleUnknown"):
        value = document[name]
        metrics[name] = value[0] if isinstance(value, list) else value
    return report, metrics


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {m["model_id"]: m["status"] for m in report["models"]}


def test_the_defaults_are_active(watch: EmulatorHandle, capsys: pytest.CaptureFixture[str]) -> None:
    report, metrics = run(capsys)
    # The control-structure fallback is configured as a `us.` profile: it is read by its base id.
    assert statuses(report) == {base_model_id(m): "ACTIVE" for m in CONFIGURED}
    assert metrics == {"ModelsNotActive": 0, "ModelLifecycleUnknown": 0}


def test_a_legacy_default_is_counted(watch: EmulatorHandle, capsys: pytest.CaptureFixture[str]) -> None:
    watch.emulator.set_faults(legacy_models=[DEFAULT_MODEL_ID])
    report, metrics = run(capsys)
    assert statuses(report)[DEFAULT_MODEL_ID] == "LEGACY"
    assert metrics == {"ModelsNotActive": 1, "ModelLifecycleUnknown": 0}


def test_a_retired_default_is_gone(watch: EmulatorHandle, capsys: pytest.CaptureFixture[str]) -> None:
    watch.emulator.set_faults(retired_models=[DEFAULT_MODEL_ID])
    report, metrics = run(capsys)
    assert statuses(report)[DEFAULT_MODEL_ID] == "GONE"
    (default,) = (m for m in report["models"] if m["model_id"] == DEFAULT_MODEL_ID)
    assert default["detail"].startswith("ResourceNotFoundException")
    assert metrics == {"ModelsNotActive": 1, "ModelLifecycleUnknown": 0}


def test_a_denied_model_is_unknown(watch: EmulatorHandle, capsys: pytest.CaptureFixture[str]) -> None:
    watch.emulator.set_faults(denied_models=[DEFAULT_MODEL_ID])
    report, metrics = run(capsys)
    assert statuses(report)[DEFAULT_MODEL_ID] == "UNKNOWN"
    assert metrics == {"ModelsNotActive": 0, "ModelLifecycleUnknown": 1}


def test_the_handler_builds_its_client_from_local_modes_endpoint_variable(
    watch: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What local mode sets (AWS_ENDPOINT_URL_BEDROCK) is all the handler's own client needs."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", watch.url)
    lifecycle.reset()
    watch.emulator.set_faults(legacy_models=[base_model_id(DEFAULT_FALLBACK_MODEL_IDS[-1])])
    report, metrics = run(capsys)
    assert statuses(report)[base_model_id(DEFAULT_FALLBACK_MODEL_IDS[-1])] == "LEGACY"
    assert metrics == {"ModelsNotActive": 1, "ModelLifecycleUnknown": 0}
