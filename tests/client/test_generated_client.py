"""A client generated from the served spec works: openapi-python-client (a test-time tool,
requirements-dev.txt) turns GET /v1/openapi.json into a Python package, offline, and every call
below goes through that package against local mode: the sync door, a job and its polling, an
upload then init_image_s3_key, and three errors, each answer parsed into the generated type the
spec names for its status.

The stack is tests/client's package-wide local mode (`client_stack`): moto's state is per
process, so one stack runs at a time."""

from __future__ import annotations

import base64
import importlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import requests
from PIL import Image

from img2img_local.aws import create_resources
from img2img_local.runner import LocalStack
from tests import imagegen

pytestmark = [pytest.mark.local, pytest.mark.timeout(120)]

# Not `img2img_client` (the generator's name for a spec titled img2img): that is the command's
# package, already imported.
PACKAGE = "img2img_generated"
# No post-hooks: by default the generator runs `ruff` from PATH over its output (a warning, so a
# failure here, when the venv is not activated), and a package the test only imports needs none.
CONFIG = "post_hooks: []\n"
FINAL = {"SUCCEEDED", "FAILED", "CONTENT_FILTERED"}


class Generated:
    """The generated package: its Client, its models and one module per operation."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.models = importlib.import_module(f"{PACKAGE}.models")

    def operation(self, name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.default.{name}")

    @property
    def sync_run(self) -> Any:
        return self.operation("image_to_image")

    @property
    def submit(self) -> Any:
        return self.operation("submit_job")

    @property
    def get_job(self) -> Any:
        return self.operation("get_job")

    @property
    def upload(self) -> Any:
        return self.operation("create_upload")


@pytest.fixture(scope="module", autouse=True)
def _stack_resources(client_stack: LocalStack) -> None:
    """The package's stack shares moto's process-wide state with tests that use moto's
    in-process mock_aws (test_cli_units), which wipes it on exit: make sure the stack's
    buckets, queue and table exist again (create_resources is idempotent)."""
    create_resources(client_stack.aws_url)


@pytest.fixture(scope="module")
def generated(client_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """Generate the client from the spec local mode serves, and import it."""
    served = requests.get(f"{client_stack.api_url}/v1/openapi.json", timeout=10)
    assert served.status_code == 200, served.text
    work = tmp_path_factory.mktemp("generated")
    spec, config = work / "openapi.json", work / "config.yaml"
    spec.write_text(json.dumps(served.json(), indent=2))
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec)]
    command += ["--output-path", str(work / PACKAGE), "--meta", "none", "--config", str(config)]
    command += ["--fail-on-warning"]  # every schema and operation of the spec generated
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sys.path.insert(0, str(work))
    try:
        yield Generated(importlib.import_module(PACKAGE))
    finally:
        sys.path.remove(str(work))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def client(generated: Generated, client_stack: LocalStack) -> Iterator[Any]:
    """The generated Client on local mode's API (an unsigned request is local mode's one user).
    A status the spec does not document for the operation raises errors.UnexpectedStatus."""
    with open_client(generated, client_stack) as opened:
        yield opened


def open_client(generated: Generated, stack: LocalStack, headers: dict[str, str] | None = None) -> Any:
    return generated.package.Client(
        base_url=stack.api_url, headers=headers or {}, timeout=60.0, raise_on_unexpected_status=True
    )


def wait_for_end(generated: Generated, client: Any, job_id: str, timeout: float = 30) -> Any:
    """Poll GET /v1/jobs/{job_id} through the generated client until the job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        polled = generated.get_job.sync_detailed(job_id, client=client)
        assert polled.status_code == 200, polled.content
        job = polled.parsed
        assert isinstance(job, generated.models.JobAnswer)
        if job.status in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.2)


def request_body(generated: Generated, prompt: str = "A lighthouse at dusk.", **fields: Any) -> Any:
    """The generated request model: an inline source unless the fields name one."""
    models = generated.models
    if "init_image_s3_key" not in fields:
        fields.setdefault("init_image", base64.b64encode(imagegen.png(64, 64)).decode())
    return models.ImageToImageRequest(text_prompts=[models.TextPrompt(text=prompt)], **fields)


def assert_image(encoded: str) -> None:
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as picture:
        picture.verify()
        assert picture.format == "PNG"
        assert picture.width > 0 and picture.height > 0


def test_the_spec_generates_a_client_with_every_answer_typed(generated: Generated) -> None:
    for name in ("SyncAnswer", "JobAccepted", "JobAnswer", "UploadTicket", "ErrorAnswer"):
        assert isinstance(getattr(generated.models, name), type), name
    assert hasattr(generated.package, "Client")


def test_the_sync_door_answers_a_typed_sdxl_answer(generated: Generated, client: Any) -> None:
    models = generated.models
    response = generated.sync_run.sync_detailed(client=client, body=request_body(generated, seed=7))
    assert response.status_code == 200, response.content
    answer = response.parsed
    assert isinstance(answer, models.SyncAnswer)
    assert answer.result == "success"
    assert answer.job_id
    assert answer.status == models.Status.SUCCEEDED
    (artifact,) = answer.artifacts
    assert isinstance(artifact, models.SdxlArtifact)
    assert artifact.finish_reason == models.FinishReason.SUCCESS
    assert artifact.seed == 7
    assert isinstance(artifact.base64, str)
    assert_image(artifact.base64)
    assert isinstance(answer.image, models.Location)
    assert answer.image.s3_uri.startswith("s3://")


def test_a_job_is_accepted_then_polled_to_its_end(generated: Generated, client: Any) -> None:
    models = generated.models
    response = generated.submit.sync_detailed(client=client, body=request_body(generated, "A harbour."))
    assert response.status_code == 202, response.content
    accepted = response.parsed
    assert isinstance(accepted, models.JobAccepted)
    assert accepted.status == models.Status.QUEUED
    assert isinstance(accepted.links, models.JobLinks)
    assert accepted.links.self_.endswith(f"/v1/jobs/{accepted.job_id}")

    job = wait_for_end(generated, client, accepted.job_id)
    assert isinstance(job, models.JobAnswer)
    assert job.job_id == accepted.job_id
    assert job.status == models.Status.SUCCEEDED
    assert isinstance(job.result, models.ResultInfo)
    assert job.result.finish_reason == models.FinishReason.SUCCESS
    assert isinstance(job.image, models.Location)
    assert isinstance(job.metadata, models.Location)


def test_an_upload_then_its_key_runs_the_sync_door(generated: Generated, client: Any) -> None:
    models = generated.models
    response = generated.upload.sync_detailed(
        client=client, body=models.UploadRequest(content_type="image/png")
    )
    assert response.status_code == 201, response.content
    ticket = response.parsed
    assert isinstance(ticket, models.UploadTicket)
    assert isinstance(ticket.upload, models.UploadForm)
    assert isinstance(ticket.upload.fields, models.UploadFormFields)
    source = imagegen.png(320, 240)
    assert len(source) <= ticket.max_bytes
    # A presigned POST: its fields first, then the file.
    posted = requests.post(
        ticket.upload.url,
        data=ticket.upload.fields.to_dict(),
        files={"file": ("source.png", source, "image/png")},
        timeout=30,
    )
    assert posted.status_code in (200, 201, 204), posted.text

    run = generated.sync_run.sync_detailed(
        client=client, body=request_body(generated, init_image_s3_key=ticket.init_image_s3_key)
    )
    assert run.status_code == 200, run.content
    answer = run.parsed
    assert isinstance(answer, models.SyncAnswer)
    assert answer.status == models.Status.SUCCEEDED
    assert isinstance(answer.artifacts[0].base64, str)
    assert_image(answer.artifacts[0].base64)


def test_an_invalid_field_is_a_typed_400_naming_it(generated: Generated, client: Any) -> None:
    models = generated.models
    response = generated.sync_run.sync_detailed(client=client, body=request_body(generated, steps=5))
    assert response.status_code == 400, response.content
    error = response.parsed
    assert isinstance(error, models.ErrorAnswer)
    assert isinstance(error.error, models.ErrorInfo)
    assert isinstance(error.error.details, list)
    assert all(isinstance(d, models.Detail) for d in error.error.details)
    assert "steps" in [d.field for d in error.error.details], error.error.details


def test_an_unknown_job_is_a_typed_404(generated: Generated, client: Any) -> None:
    models = generated.models
    response = generated.get_job.sync_detailed(f"no-such-job-{uuid.uuid4().hex}", client=client)
    assert response.status_code == 404, response.content
    error = response.parsed
    assert isinstance(error, models.ErrorAnswer)
    assert error.error.code == "job_not_found"


def test_an_idempotency_key_reused_with_another_body_is_a_typed_409(
    generated: Generated, client: Any, client_stack: LocalStack
) -> None:
    """The spec declares the Idempotency-Key header, so the generated function takes it."""
    models = generated.models
    key = f"generated-{uuid.uuid4().hex}"
    first = generated.submit.sync_detailed(
        client=client, body=request_body(generated, "A mill."), idempotency_key=key
    )
    assert first.status_code == 202, first.content
    assert isinstance(first.parsed, models.JobAccepted)
    assert first.headers["Location"] == first.parsed.links.self_  # the documented header
    again = generated.submit.sync_detailed(
        client=client, body=request_body(generated, "Another mill."), idempotency_key=key
    )
    assert again.status_code == 409, again.content
    error = again.parsed
    assert isinstance(error, models.ErrorAnswer)
    assert error.error.code == "idempotency_conflict"
    wait_for_end(generated, client, first.parsed.job_id)  # nothing left running for the next tests
