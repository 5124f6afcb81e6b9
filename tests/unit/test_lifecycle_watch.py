"""The lifecycle watch: the verdict (domain), GetFoundationModel read through a real boto3
`bedrock` client with botocore's Stubber (answers shaped like the documented response in
tests/fixtures/bedrock/get-foundation-model.json), and the handler's metrics as Powertools
prints them (EMF on stdout)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from img2img.adapters.model_catalog import FoundationModels, bedrock_client
from img2img.catalog import retirement
from img2img.config import get_settings
from img2img.domain.lifecycle import ModelStatus, check_models, configured_base_ids
from img2img.handlers import lifecycle
from tests.handlers.api_events import FakeContext

pytestmark = pytest.mark.unit

FIXTURE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "bedrock" / "get-foundation-model.json").read_text()
)
SD35 = "stability.sd3-5-large-v1:0"
ULTRA = "stability.stable-image-ultra-v1:1"
STRUCTURE = "stability.stable-image-control-structure-v1:0"
RETIRED = "stability.sd3-large-v1:0"  # retired in img2img.catalog
# A scheduled rule's event (tests/events/eventbridge_scheduled.md says where its shape comes from).
SCHEDULED_EVENT = json.loads(
    (Path(__file__).resolve().parents[1] / "events" / "eventbridge_scheduled.json").read_text()
)


def body(kind: str, model_id: str) -> dict[str, Any]:
    """The fixture's documented body for `kind` ("active" or "legacy"), describing `model_id`."""
    answer = copy.deepcopy(FIXTURE[kind])
    details = answer["modelDetails"]
    details["modelArn"] = details["modelArn"].rsplit("/", 1)[0] + f"/{model_id}"
    details["modelId"] = model_id
    return dict(answer)


@pytest.fixture
def client() -> Any:
    return boto3.client(
        "bedrock", region_name="us-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def answer(stubber: Stubber, model_id: str, kind: str) -> None:
    stubber.add_response("get_foundation_model", body(kind, model_id), {"modelIdentifier": model_id})


def fail(stubber: Stubber, model_id: str, code: str, status: int) -> None:
    stubber.add_client_error(
        "get_foundation_model",
        service_error_code=code,
        service_message=f"{code} for {model_id}",
        http_status_code=status,
        expected_params={"modelIdentifier": model_id},
    )


def count_calls(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register(
        "before-call.bedrock.GetFoundationModel", lambda params, **_: calls.append(params["url_path"])
    )
    return calls


# --- domain ------------------------------------------------------------------------------------


def test_check_models_looks_each_base_model_up_once_and_counts() -> None:
    asked: list[str] = []
    verdicts = {
        SD35: ModelStatus(SD35, "ACTIVE", "ACTIVE"),
        f"us.{STRUCTURE}": ModelStatus(STRUCTURE, "LEGACY", "LEGACY", "2027-01-01T00:00:00+00:00"),
        ULTRA: ModelStatus(ULTRA, "UNKNOWN", "AccessDeniedException: no"),
        RETIRED: ModelStatus(RETIRED, "GONE", "end of life"),
    }

    def lookup(model_id: str) -> ModelStatus:
        asked.append(model_id)
        return verdicts[model_id]

    report = check_models([SD35, f"us.{STRUCTURE}", ULTRA, STRUCTURE, RETIRED, f"us.{SD35}"], lookup)
    # One lookup per model, by the id first configured for it (a profile id: its profile can be read)
    assert asked == [SD35, f"us.{STRUCTURE}", ULTRA, RETIRED]
    assert [m.status for m in report.models] == ["ACTIVE", "LEGACY", "UNKNOWN", "GONE"]
    assert (report.not_active, report.unknown) == (2, 1)
    assert report.to_dict()["models"][1] == {
        "model_id": STRUCTURE,
        "status": "LEGACY",
        "detail": "LEGACY",
        "end_of_life": "2027-01-01T00:00:00+00:00",
    }


def test_no_models_is_an_empty_report() -> None:
    report = check_models([], lambda model_id: pytest.fail("no lookup expected"))
    assert report.to_dict() == {"not_active": 0, "unknown": 0, "models": []}


def test_configured_base_ids_reads_profiles_and_arns_by_their_model() -> None:
    arn = f"arn:aws:bedrock:us-west-2::foundation-model/{ULTRA}"
    assert configured_base_ids([f"us.{SD35}", SD35, arn, f"eu.{ULTRA}"]) == (SD35, ULTRA)


# --- adapter -----------------------------------------------------------------------------------


def test_an_active_model(client: Any, stubber: Stubber) -> None:
    answer(stubber, SD35, "active")
    assert FoundationModels(client).status(SD35) == ModelStatus(SD35, "ACTIVE", "ACTIVE", None)


def test_a_legacy_model_carries_its_end_of_life(client: Any, stubber: Stubber) -> None:
    answer(stubber, STRUCTURE, "legacy")
    # An inference profile id is read as its base model: GetFoundationModel takes base ids.
    status = FoundationModels(client).status(f"us.{STRUCTURE}")
    assert (status.model_id, status.status) == (STRUCTURE, "LEGACY")
    assert status.end_of_life == "2026-09-30T00:00:00+00:00"
    assert status.detail == "LEGACY since 2026-03-30T00:00:00+00:00, end of life 2026-09-30T00:00:00+00:00"
    assert status.not_active


def test_not_found_is_gone(client: Any, stubber: Stubber) -> None:
    fail(stubber, ULTRA, "ResourceNotFoundException", 404)
    status = FoundationModels(client).status(ULTRA)
    assert (status.status, status.end_of_life) == ("GONE", None)
    assert status.detail.startswith("ResourceNotFoundException: ") and "us-west-2" in status.detail


PROFILE = json.loads((Path(__file__).parents[1] / "fixtures" / "aws" / "control-plane.json").read_text())[
    "bedrock.get_inference_profile"
]["response"]


def test_a_profile_whose_model_this_region_does_not_read_is_active_through_the_profile(
    client: Any, stubber: Stubber
) -> None:
    """No false alarm: GetFoundationModel's not-found for the base id of a `us.` profile is
    answered by GetInferenceProfile (AWS's documented shape); only a gone profile is GONE."""
    profile = f"us.{STRUCTURE}"
    fail(stubber, STRUCTURE, "ResourceNotFoundException", 404)
    stubber.add_response("get_inference_profile", PROFILE, {"inferenceProfileIdentifier": profile})
    status = FoundationModels(client).status(profile)
    assert (status.model_id, status.status) == (STRUCTURE, "ACTIVE") and profile in status.detail
    fail(stubber, STRUCTURE, "ResourceNotFoundException", 404)
    stubber.add_client_error("get_inference_profile", "ResourceNotFoundException", "gone", 404)
    assert FoundationModels(client).status(profile).status == "GONE"


def test_a_model_the_catalogue_knows_as_retired_is_gone_without_a_call(client: Any, stubber: Stubber) -> None:
    calls = count_calls(client)
    for model_id in (RETIRED, "stability.stable-diffusion-xl-v1"):  # end of life: unknown, known
        retired = retirement(model_id)
        assert retired is not None
        status = FoundationModels(client).status(f"us.{model_id}")
        assert (status.model_id, status.status) == (model_id, "GONE")
        assert status.detail.startswith(f"{retired.name} reached end of life ")
        assert status.detail.endswith(f": use {retired.successor}")
        assert status.end_of_life == (retired.end_of_life.isoformat() if retired.end_of_life else None)
    assert calls == []


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        ("AccessDeniedException", 403),
        ("ThrottlingException", 429),
        ("ValidationException", 400),
        ("InternalServerException", 500),
    ],
)
def test_errors_that_say_nothing_about_the_model_are_unknown(
    client: Any, stubber: Stubber, code: str, http_status: int
) -> None:
    fail(stubber, SD35, code, http_status)
    status = FoundationModels(client).status(SD35)
    assert (status.status, status.detail) == ("UNKNOWN", f"{code}: {code} for {SD35}")
    assert not status.not_active


def test_an_unreachable_endpoint_is_unknown() -> None:
    class Unreachable:
        def get_foundation_model(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://bedrock.us-west-2.amazonaws.com")

    status = FoundationModels(Unreachable()).status(SD35)
    assert status.status == "UNKNOWN" and status.detail.startswith("EndpointConnectionError: ")


def test_an_unexpected_lifecycle_status_is_unknown_not_active(client: Any, stubber: Stubber) -> None:
    reply = body("active", SD35)
    reply["modelDetails"]["modelLifecycle"]["status"] = "RETIRING"
    stubber.add_response("get_foundation_model", reply, {"modelIdentifier": SD35})
    assert FoundationModels(client).status(SD35).status == "UNKNOWN"


def test_the_client_retries_in_standard_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore resolves credentials when it builds a client: never from the instance metadata here.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    built = bedrock_client("eu-west-1")
    assert built.meta.region_name == "eu-west-1"
    assert built.meta.service_model.service_name == "bedrock"
    assert built.meta.config.retries["mode"] == "standard"


# --- handler -----------------------------------------------------------------------------------


@pytest.fixture
def watch_env(monkeypatch: pytest.MonkeyPatch, client: Any) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-west-2",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Img2Img",
        "POWERTOOLS_SERVICE_NAME": "img2img",
        "IMG2IMG_ENV": "unit",
        "IMG2IMG_INPUT_BUCKET": "in",
        "IMG2IMG_OUTPUT_BUCKET": "out",
        "IMG2IMG_JOBS_TABLE": "jobs",
        "IMG2IMG_ALLOWED_MODEL_IDS": f"{SD35},us.{STRUCTURE}",
        "IMG2IMG_DEFAULT_MODEL_ID": SD35,
        # STRUCTURE again (as its base id) is looked up once; RETIRED needs no call.
        "IMG2IMG_FALLBACK_MODEL_IDS": f"{ULTRA},{STRUCTURE},{RETIRED}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    get_settings.cache_clear()
    lifecycle.build(client)
    yield
    lifecycle.reset()
    get_settings.cache_clear()


def printed(out: str) -> list[dict[str, Any]]:
    """The EMF metric documents the handler printed (Powertools Metrics prints to stdout)."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def per_model_logs(caplog: pytest.LogCaptureFixture) -> dict[str, logging.LogRecord]:
    return {r.model_id: r for r in caplog.records if hasattr(r, "model_id")}


def published(emf: list[dict[str, Any]]) -> dict[str, Any]:
    (document,) = emf
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Img2Img"
    assert [sorted(d) for d in directive["Dimensions"]] == [["environment", "service"]]
    assert (document["service"], document["environment"]) == ("img2img", "unit")
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {"ModelsNotActive": "Count", "ModelLifecycleUnknown": "Count"}
    values = {}
    for name in units:
        value = document[name]  # Powertools prints a list of values (one per add_metric)
        values[name] = value[0] if isinstance(value, list) else value
    return values


def test_the_handler_reports_each_model_and_publishes_the_counts(
    watch_env: None, stubber: Stubber, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    answer(stubber, SD35, "active")
    answer(stubber, STRUCTURE, "legacy")
    fail(stubber, ULTRA, "AccessDeniedException", 403)
    report = lifecycle.handler(SCHEDULED_EVENT, FakeContext("Img2Img-unit-lifecycle"))

    assert [(m["model_id"], m["status"]) for m in report["models"]] == [
        (SD35, "ACTIVE"),
        (STRUCTURE, "LEGACY"),
        (ULTRA, "UNKNOWN"),
        (RETIRED, "GONE"),
    ]
    assert (report["not_active"], report["unknown"]) == (2, 1)
    assert published(printed(capsys.readouterr().out)) == {"ModelsNotActive": 2, "ModelLifecycleUnknown": 1}
    logs = per_model_logs(caplog)  # one line per model
    assert {m: record.levelname for m, record in logs.items()} == {
        SD35: "INFO",
        STRUCTURE: "WARNING",
        ULTRA: "WARNING",
        RETIRED: "WARNING",
    }
    assert logs[STRUCTURE].end_of_life == "2026-09-30T00:00:00+00:00"
    assert logs[ULTRA].detail.startswith("AccessDeniedException")


def test_all_active_publishes_zero(
    watch_env: None,
    monkeypatch: pytest.MonkeyPatch,
    stubber: Stubber,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("IMG2IMG_FALLBACK_MODEL_IDS", ULTRA)
    get_settings.cache_clear()
    for model_id in (SD35, STRUCTURE, ULTRA):
        answer(stubber, model_id, "active")
    report = lifecycle.handler(SCHEDULED_EVENT, FakeContext("Img2Img-unit-lifecycle"))
    assert (report["not_active"], report["unknown"]) == (0, 0)
    assert published(printed(capsys.readouterr().out)) == {"ModelsNotActive": 0, "ModelLifecycleUnknown": 0}
    assert {record.levelname for record in per_model_logs(caplog).values()} == {"INFO"}


def test_out_of_time_the_rest_is_unknown_and_the_metrics_still_go_out(
    watch_env: None, client: Any, stubber: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    class Late(FakeContext):
        def get_remaining_time_in_millis(self) -> int:
            return lifecycle.TIME_MARGIN_MS - 1

    calls = count_calls(client)
    report = lifecycle.handler(SCHEDULED_EVENT, Late("Img2Img-unit-lifecycle"))
    assert calls == []
    assert [m["status"] for m in report["models"]] == ["UNKNOWN"] * 4
    assert published(printed(capsys.readouterr().out)) == {"ModelsNotActive": 0, "ModelLifecycleUnknown": 4}
