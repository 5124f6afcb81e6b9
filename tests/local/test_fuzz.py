"""Schema-driven fuzzing of the API as local mode serves it: schemathesis reads the OpenAPI
document the api function serves at GET /v1/openapi.json and sends every operation requests
that follow the schema and requests that break it (wrong types, missing and extra fields,
odd strings, out-of-range numbers), through the local API Gateway front, to the real
handler and the Bedrock emulator. The properties: no answer is a 5xx, every answer's status,
content type and body are ones the spec documents for that operation, and every error answer
has the service's error shape.

Examples per operation: IMG2IMG_FUZZ_EXAMPLES (default 25 here; `make stress` asks for
STRESS_FUZZ_EXAMPLES, set in mk/hardening.mk)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from img2img_local.runner import LocalStack, start_local

pytestmark = [pytest.mark.local, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("IMG2IMG_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzz_stack() -> Iterator[LocalStack]:
    with start_local(api_port=0, aws_port=0, bedrock_port=0) as stack:
        stack.wait_healthy(timeout=30)
        yield stack


@pytest.fixture(scope="module")
def served_schema(fuzz_stack: LocalStack) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_stack.api_url}/v1/openapi.json")


OPERATIONS = [
    ("POST", "/v1/image-to-image"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("POST", "/v1/uploads"),
    ("GET", "/v1/models"),
    ("GET", "/v1/health"),
]


def test_the_served_spec_names_every_route(fuzz_stack: LocalStack) -> None:
    paths = requests.get(f"{fuzz_stack.api_url}/v1/openapi.json", timeout=10).json()["paths"]
    assert {(m.lower(), p) for m, p in OPERATIONS} <= {(m, p) for p, item in paths.items() for m in item}


def check_answer(case: Any, response: Any) -> None:
    # Every answer is one the spec documents, in the status, content type and body it documents.
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        body = response.json()
        assert set(body) - {"job_id", "request_id"} == {"error"}, body
        assert {"code", "message", "details"} <= set(body["error"]), body
        assert all(set(d) == {"field", "message"} for d in body["error"]["details"]), body


# Operations that take input get requests that break their schema too (GET /v1/models and
# /v1/health take none: there is nothing to break).
RUNS = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if p not in ("/v1/models", "/v1/health")
]


@pytest.mark.parametrize(("method", "path", "mode"), RUNS, ids=[f"{m} {p} {g.value}" for m, p, g in RUNS])
def test_no_operation_answers_5xx(served_schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    operation = served_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("IMG2IMG_FUZZ_RANDOM") is None,  # reproducible unless asked
        database=None,
    )
    def fuzz(case: Any) -> None:
        check_answer(case, case.call(timeout=60))

    fuzz()


def test_fuzzed_requests_left_no_work_behind(fuzz_stack: LocalStack) -> None:
    """Jobs the fuzzer queued ran to an end: nothing in the dead-letter queue."""
    sqs = fuzz_stack.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=fuzz_stack.resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert json.loads(attrs["ApproximateNumberOfMessages"]) == 0
