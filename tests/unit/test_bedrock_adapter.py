"""The Bedrock adapter against a real bedrock-runtime client with botocore's Stubber: every
InvokeModel error becomes the documented domain error; only model timeouts are retried here.
Over FakeBedrock, it meets the model invoker's contract (tests/contracts.py), as the in-memory
FakeModel the domain tests use does."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from img2img.adapters.bedrock import BedrockInvoker, request_json
from img2img.domain import errors
from tests.contracts import ModelInvokerContract
from tests.fakes import FakeBedrock

pytestmark = pytest.mark.unit
MODEL = "stability.stable-diffusion-xl-v1"


@pytest.fixture
def client(aws_env: None):  # type: ignore[no-untyped-def]
    return boto3.client("bedrock-runtime", region_name="us-west-2")


def ok_response(payload: dict[str, object], headers: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "body": io.BytesIO(json.dumps(payload).encode()),
        "contentType": "application/json",
        "ResponseMetadata": {"HTTPHeaders": headers or {}},
    }


def test_success_reads_json_and_emulator_header(client) -> None:  # type: ignore[no-untyped-def]
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_model", {"body": io.BytesIO(b'{"result": "success"}'), "contentType": "application/json"}
        )
        reply = BedrockInvoker(client).invoke(MODEL, {"a": 1})
    assert reply.payload == {"result": "success"} and reply.attempts == 1 and reply.emulated is False


@pytest.mark.parametrize(
    ("code", "status", "expected", "retryable"),
    [
        ("ValidationException", 400, errors.InvalidRequest, False),
        ("AccessDeniedException", 403, errors.ModelUnavailable, False),
        ("ResourceNotFoundException", 404, errors.ModelUnavailable, False),
        ("ServiceQuotaExceededException", 400, errors.ModelThrottled, True),
        ("ThrottlingException", 429, errors.ModelThrottled, True),
        ("ModelNotReadyException", 429, errors.ModelBusy, True),
        ("InternalServerException", 500, errors.ModelBusy, True),
        ("ServiceUnavailableException", 503, errors.ModelBusy, True),
        ("ModelErrorException", 424, errors.ModelError, False),
    ],
)
def test_errors_translate(client, code: str, status: int, expected: type, retryable: bool) -> None:  # type: ignore[no-untyped-def]
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_model", service_error_code=code, service_message="m", http_status_code=status
        )
        with pytest.raises(expected) as caught:
            BedrockInvoker(client, timeout_retries=0, attempts=1).invoke(MODEL, {})
    assert caught.value.retryable is retryable
    assert MODEL in caught.value.message


def test_end_of_life_message_says_what_to_change(client) -> None:  # type: ignore[no-untyped-def]
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_model",
            service_error_code="ResourceNotFoundException",
            service_message="This model version has reached the end of its life.",
            http_status_code=404,
        )
        with pytest.raises(errors.ModelUnavailable) as caught:
            BedrockInvoker(client).invoke(MODEL, {})
    assert "us-west-2" in caught.value.message and "cdk.json" in caught.value.message
    assert "end of its life" in caught.value.message


def test_model_timeout_is_retried_a_bounded_number_of_times(client) -> None:  # type: ignore[no-untyped-def]
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_model", service_error_code="ModelTimeoutException", http_status_code=408
        )
        stub.add_response("invoke_model", {"body": io.BytesIO(b"{}"), "contentType": "application/json"})
        assert BedrockInvoker(client, timeout_retries=1).invoke(MODEL, {}).attempts == 2
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error(
                "invoke_model", service_error_code="ModelTimeoutException", http_status_code=408
            )
        with pytest.raises(errors.ModelTimeout):
            BedrockInvoker(client, timeout_retries=2).invoke(MODEL, {})
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]"])
def test_garbled_bodies_are_model_errors(client, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    with Stubber(client) as stub:
        stub.add_response("invoke_model", {"body": io.BytesIO(raw), "contentType": "application/json"})
        with pytest.raises(errors.ModelError):
            BedrockInvoker(client).invoke(MODEL, {})


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "InternalServerException",
    ],
)
def test_answers_that_say_the_model_did_not_run_are_retried_with_backoff(client, code: str) -> None:  # type: ignore[no-untyped-def]
    waits: list[float] = []
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error("invoke_model", service_error_code=code, http_status_code=429)
        stub.add_response("invoke_model", {"body": io.BytesIO(b"{}"), "contentType": "application/json"})
        reply = BedrockInvoker(client, attempts=3, sleep=waits.append, jitter=lambda: 1.0).invoke(MODEL, {})
    assert reply.attempts == 3 and waits == [0.5, 1.0]  # exponential, full jitter at its top


@pytest.mark.parametrize("code", ["ValidationException", "ModelErrorException", "AccessDeniedException"])
def test_answers_about_the_request_or_the_model_are_never_retried(client, code: str) -> None:  # type: ignore[no-untyped-def]
    with Stubber(client) as stub:
        stub.add_client_error("invoke_model", service_error_code=code, http_status_code=400)
        with pytest.raises(errors.ServiceError):
            BedrockInvoker(client, attempts=3, sleep=lambda s: None).invoke(MODEL, {})
        stub.assert_no_pending_responses()


class _SlowClient:
    meta = type("Meta", (), {"region_name": "us-east-1"})()
    calls = 0

    def invoke_model(self, **_: object) -> None:
        from botocore.exceptions import ReadTimeoutError

        self.calls += 1
        raise ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")


def test_a_read_timeout_is_a_model_timeout_and_never_called_again() -> None:
    """The model may have run (and billed): no retry, whatever the budgets say."""
    slow = _SlowClient()
    with pytest.raises(errors.ModelTimeout):
        BedrockInvoker(slow, timeout_retries=2, attempts=3, sleep=lambda s: None).invoke(MODEL, {})
    assert slow.calls == 1


class _CutOffClient:
    """A connection that drops after the request went out (botocore's ConnectionClosedError)."""

    meta = type("Meta", (), {"region_name": "us-east-1"})()
    calls = 0

    def invoke_model(self, **_: object) -> None:
        from botocore.exceptions import ConnectionClosedError

        self.calls += 1
        raise ConnectionClosedError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")


def test_a_call_cut_off_mid_way_may_have_billed_and_is_never_called_again() -> None:
    cut = _CutOffClient()
    with pytest.raises(errors.ModelBusy) as caught:
        BedrockInvoker(cut, attempts=3, sleep=lambda s: None).invoke(MODEL, {})
    assert caught.value.may_have_billed and caught.value.retryable and cut.calls == 1


def test_sync_and_worker_clients_differ(aws_env: None) -> None:
    from img2img.config import Settings
    from img2img.handlers.wiring import model_client_config

    settings = Settings(input_bucket="i", output_bucket="o", jobs_table="t", model_read_timeout_seconds=20)
    sync = model_client_config(settings, sync=True)
    assert sync.read_timeout == 20 and sync.retries == {"mode": "standard", "total_max_attempts": 1}
    # botocore never retries a model call (it would retry a billed read timeout): the adapter does.
    assert model_client_config(settings, sync=False).retries == {"mode": "standard", "total_max_attempts": 1}


def test_a_call_with_a_deadline_uses_a_client_for_that_many_whole_seconds() -> None:
    """botocore fixes a read timeout per client: the sync route's calls go through a client made
    for their deadline (at least 1 s); calls without one through the default client."""
    default, timed = FakeBedrock(), FakeBedrock()
    asked: list[int] = []

    def client_for(seconds: int) -> FakeBedrock:
        asked.append(seconds)
        return timed

    invoker = BedrockInvoker(default, attempts=1, client_for_timeout=client_for)
    invoker.invoke(MODEL, {"prompt": "x"}, timeout=7.4)
    invoker.invoke(MODEL, {"prompt": "x"}, timeout=0.2)
    invoker.invoke(MODEL, {"prompt": "x"})
    assert asked == [7, 1] and len(timed.calls) == 2 and len(default.calls) == 1


def test_no_retry_starts_that_could_not_end_before_the_deadline(client) -> None:  # type: ignore[no-untyped-def]
    """With under a second of the deadline left, neither a ModelTimeoutException nor a throttle
    is retried (and nothing waits): the error goes up while the invocation can still record it."""
    for code, status, error in (
        ("ModelTimeoutException", 408, errors.ModelTimeout),
        ("ThrottlingException", 429, errors.ModelThrottled),
    ):
        waits: list[float] = []
        with Stubber(client) as stub:
            stub.add_client_error("invoke_model", service_error_code=code, http_status_code=status)
            invoker = BedrockInvoker(
                client, timeout_retries=1, attempts=3, sleep=waits.append, client_for_timeout=lambda s: client
            )
            with pytest.raises(error):
                invoker.invoke(MODEL, {}, timeout=0.5)
            stub.assert_no_pending_responses()
        assert waits == []


def test_retries_within_the_deadline_use_the_seconds_left(client) -> None:  # type: ignore[no-untyped-def]
    asked: list[int] = []

    def client_for(seconds: int) -> Any:
        asked.append(seconds)
        return client

    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_model", service_error_code="ModelTimeoutException", http_status_code=408
        )
        stub.add_response("invoke_model", {"body": io.BytesIO(b"{}"), "contentType": "application/json"})
        reply = BedrockInvoker(client, timeout_retries=1, client_for_timeout=client_for).invoke(
            MODEL, {}, timeout=30
        )
    assert reply.attempts == 2 and len(asked) == 2 and all(28 <= s <= 30 for s in asked)


@dataclass
class BedrockRig:
    client: FakeBedrock = field(default_factory=FakeBedrock)

    @property
    def invoker(self) -> BedrockInvoker:
        return BedrockInvoker(self.client, timeout_retries=0, attempts=1)

    def gone(self, model_id: str) -> None:
        self.client.gone.add(model_id)

    def fail_next(self, code: str) -> None:
        self.client.errors.append(code)

    def finish(self, reason: str) -> None:
        self.client.finish_reason = reason

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(call["modelId"], call["body"]) for call in self.client.calls]


class TestBedrockInvokerContract(ModelInvokerContract):
    @pytest.fixture
    def rig(self) -> BedrockRig:
        return BedrockRig()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": "a cat", "image": base64.b64encode(bytes(range(256)) * 400).decode(), "seed": 7},
        {"image": "A" * 70_000 + "=", "other": "B" * 70_000 + '"'},  # the second needs escaping
        {"text": "é" * 70_000, "nested": {"image": "QUJD" * 20_000}, "list": [1, None, 2.5]},
        {"control": "ab\ncd" * 20_000, "quote": 'x"y\\z', "slashes": "a/b" * 30_000},
        {1: "int key", "float": 0.1, "bool": True},
        {2: "QUJD" * 20_000},  # json.dumps quotes a key that is not a string
    ],
    ids=["empty", "image", "escaped", "unicode-nested", "controls", "odd-keys", "int-key-image"],
)
def test_request_bodies_are_exactly_what_json_dumps_writes(body: dict[object, object]) -> None:
    assert request_json(body) == json.dumps(body).encode()  # type: ignore[arg-type]


def test_access_denied_names_todays_causes_and_their_remedies(client) -> None:  # type: ignore[no-untyped-def]
    """A subscription never completed (the operator runs make enable-models) or a LEGACY model
    withheld for inactivity (choose an ACTIVE one); Bedrock's own text stays in the logs."""
    with Stubber(client) as stub:
        stub.add_client_error("invoke_model", "AccessDeniedException", "arn:aws:iam::1:role/x", 403)
        with pytest.raises(errors.ModelUnavailable) as caught:
            BedrockInvoker(client).invoke(MODEL, {})
    message = caught.value.message
    assert "make enable-models ENV=" in message and "LEGACY" in message
    assert "ACTIVE model in cdk.json" in message
    assert "arn:aws:iam" not in message
