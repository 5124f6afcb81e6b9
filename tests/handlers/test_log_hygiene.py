"""What the functions write to their logs (CloudWatch keeps it, many people can read it) never
carries image bytes, base64, presigned URLs' signatures or credentials.

Both handlers run a full round of work through their real entry points (moto behind AWS, a
fake Bedrock): sync and async API jobs with inline images, uploads, job look-ups that hand
out presigned URLs, S3 drops, a model that throttles and one that denies access, bad images,
bad bodies and an unexpected error. Every log record of the service's loggers (at DEBUG, as
with POWERTOOLS_LOG_LEVEL=DEBUG) is rendered by the Powertools formatter, exactly as Lambda
would ship it, and so is everything printed to stdout (the EMF metrics); then the text is
searched for each secret the run handled."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from img2img.handlers import api, worker
from img2img.handlers.observability import logger as service_logger
from tests import imagegen
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.sqs_events import s3_notification, sqs_event
from tests.handlers.world import INPUT, World

pytestmark = pytest.mark.handlers

ACCESS_KEY = "AKIASENTINELKEY00042"
SECRET_KEY = "sEnTiNeL/Secret+Key0123456789abcdefghIJKL"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEsentinelSessionToken0123456789"
RAW_MARKERS = ("\x89PNG", "\\x89PNG", "\xff\xd8\xff", "\\xff\\xd8\\xff")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")  # hashes and ids are 64 chars or fewer


@pytest.fixture
def sentinel_credentials(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials no other test uses, so any trace of them in the logs is a leak."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


class Collected(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self.recording = False  # only while a handler runs: the test's own AWS calls are not the service's

    def emit(self, record: logging.LogRecord) -> None:
        if self.recording:
            self.lines.append(self.format(record))

    @contextmanager
    def during(self) -> Iterator[None]:
        self.recording = True
        try:
            yield
        finally:
            self.recording = False


# Who writes the logs Lambda ships, by configuration:
# - POWERTOOLS_LOG_LEVEL=DEBUG (an environment's log_level): the service's own loggers at DEBUG;
# - POWERTOOLS_DEBUG=true: Powertools' own package logger too (it does not propagate);
# - Lambda's application log level DEBUG (advanced logging controls): the root logger, so
#   every library that propagates (botocore, urllib3, Pillow) reaches CloudWatch at DEBUG.
SCOPES = {
    "service-debug": ["img2img"],
    "powertools-debug": ["img2img", "aws_lambda_powertools"],
    "lambda-debug": ["img2img", ""],
}


@pytest.fixture(params=sorted(SCOPES))
def logs(request: pytest.FixtureRequest) -> Iterator[Collected]:
    """Every record at DEBUG of the scope's loggers, rendered as Lambda ships it."""
    collected = Collected(service_logger.registered_formatter)
    loggers = [logging.getLogger(name) for name in SCOPES[request.param]]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collected)
        lg.setLevel(logging.DEBUG)
    service_level = service_logger.log_level
    service_logger.setLevel(logging.DEBUG)
    yield collected
    service_logger.setLevel(service_level)
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(collected)
        lg.setLevel(level)


def call_api(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
    response = api.handler(api_event(method, path, body, **kw), FakeContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def call_worker(logs: Collected, *bodies: Any, receive_count: int = 1) -> dict[str, Any]:
    with logs.during():
        return worker.handler(
            sqs_event(*bodies, receive_count=receive_count), FakeContext("img2img-unit-worker")
        )


def drop(world: World, key: str, data: bytes, **metadata: str) -> dict[str, Any]:
    put = world.s3.put_object(Bucket=INPUT, Key=key, Body=data, Metadata=metadata)
    return s3_notification(INPUT, key, version_id=put.get("VersionId"), etag=put["ETag"].strip('"'))


def signatures_in(found: Any) -> set[str]:
    """Every presigned URL's signature, credential and token, and every POST policy field,
    anywhere in an API answer."""
    secrets: set[str] = set()
    if isinstance(found, dict):
        for key, value in found.items():
            if key.lower() in ("x-amz-signature", "policy", "x-amz-security-token", "x-amz-credential"):
                secrets.add(str(value))
            secrets |= signatures_in(value)
    elif isinstance(found, list):
        for item in found:
            secrets |= signatures_in(item)
    elif isinstance(found, str) and "X-Amz-Signature=" in found:
        query = parse_qs(urlsplit(found).query)
        for name in ("X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential"):
            secrets.update(query.get(name, []))
    return secrets


def test_logs_carry_no_image_bytes_base64_signatures_or_credentials(
    sentinel_credentials: None, world: World, logs: Collected, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = imagegen.png(320, 200, noise=60)
    jpeg = imagegen.jpeg(300, 200)
    inline = [base64.b64encode(photo).decode(), base64.b64encode(jpeg).decode()]
    answers: list[Any] = []

    def api_call(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        with logs.during():
            status, payload = call_api(method, path, body, **kw)
        answers.append(payload)
        return status, payload

    prompt = [{"text": "a lighthouse at dusk"}]
    # The API door: sync, async, uploads, look-ups (presigned URLs), failures.
    status, done = api_call("POST", "/v1/image-to-image", {"text_prompts": prompt, "init_image": inline[0]})
    assert status == 200 and done["image"]["url"]
    assert (
        api_call(
            "POST",
            "/v1/image-to-image",
            {"text_prompts": prompt, "init_image": inline[1]},
            query={"return": "url"},
        )[0]
        == 200
    )
    status, queued = api_call("POST", "/v1/jobs", {"text_prompts": prompt, "init_image": inline[0]})
    assert status == 202
    assert call_worker(logs, *[json.loads(m["Body"]) for m in world.queued()]) == {"batchItemFailures": []}
    assert api_call("GET", f"/v1/jobs/{queued['job_id']}")[0] == 200
    assert api_call("GET", f"/v1/jobs/{done['job_id']}")[0] == 200
    status, upload = api_call("POST", "/v1/uploads", {"content_type": "image/jpeg"})
    assert status == 201 and upload["upload"]["fields"]
    gif = base64.b64encode(imagegen.gif()).decode()
    assert api_call("POST", "/v1/image-to-image", {"text_prompts": prompt, "init_image": gif})[0] == 415
    wrapped = {"text_prompts": prompt, "init_image": {"data": inline[1]}}  # a validation error's input
    assert api_call("POST", "/v1/image-to-image", wrapped)[0] == 400
    assert (
        api_call("POST", "/v1/image-to-image", {"text_prompts": prompt, "init_image": inline[0] + "%"})[0]
        == 400
    )
    world.bedrock.errors = ["AccessDeniedException"]
    assert api_call("POST", "/v1/image-to-image", {"text_prompts": prompt, "init_image": inline[1]})[0] == 503
    # The S3 door: a drop, a throttled model (retried through the queue), a bad image.
    assert call_worker(logs, drop(world, "inbox/a.png", photo, prompt="a harbour")) == {
        "batchItemFailures": []
    }
    world.bedrock.errors = ["ThrottlingException"] * 10
    event = drop(world, "inbox/b.jpg", jpeg, prompt="a harbour")
    assert call_worker(logs, event)["batchItemFailures"]
    assert call_worker(logs, event, receive_count=3)["batchItemFailures"]  # recorded, then dead-lettered
    world.bedrock.errors = []
    assert call_worker(logs, drop(world, "inbox/c.png", imagegen.truncated(photo), prompt="x")) == {
        "batchItemFailures": []
    }

    printed = capsys.readouterr()
    text = "\n".join([*logs.lines, printed.out, printed.err])
    assert any("SUCCEEDED" in line for line in logs.lines)  # the capture saw the jobs
    assert any("job will be retried" in line for line in logs.lines)  # and the failures

    handed_out = signatures_in(answers)
    assert handed_out  # the run handed out presigned URLs and POST policies
    checks: dict[str, Callable[[str], bool]] = {
        "a PNG's base64": lambda line: "iVBORw0KGgo" in line,
        "a JPEG's base64": lambda line: "/9j/4AAQ" in line,
        "a run of base64": lambda line: bool(BASE64_RUN.search(line)),
        "raw image bytes": lambda line: any(
            m in line for m in ("\x89PNG", "\\x89PNG", "\xff\xd8\xff", "\\xff\\xd8")
        ),
        "a piece of an inline image": lambda line: any(
            s[i : i + 40] in line for s in inline for i in (100, 1000, 5000)
        ),
        "a presigned URL's signature": lambda line: "x-amz-signature" in line.lower(),
        "a signature, policy or token handed out": lambda line: any(h in line for h in handed_out),
        "the access key id": lambda line: ACCESS_KEY in line,
        "the secret key": lambda line: SECRET_KEY in line,
        "the session token": lambda line: SESSION_TOKEN in line,
    }
    found = {}
    for what, leaks in checks.items():
        line = next((line for line in text.splitlines() if leaks(line)), None)
        if line is not None:
            found[what] = line[:300]
    assert found == {}
