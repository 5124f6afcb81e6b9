"""The client's pieces without a service: SigV4 signing, error mapping, where the service is
(stack outputs through botocore's Stubber), doctor's verdicts, the S3 door's metadata and
result matching, progress, and what each outcome exits with."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.header import decode_header
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.credentials import Credentials
from botocore.stub import Stubber
from requests.adapters import BaseAdapter

from img2img.catalog import base_model_id
from img2img.domain.s3_door import request_from_metadata
from img2img_client import errors
from img2img_client.api import Img2ImgApi, SigV4, region_of_execute_api
from img2img_client.cli import build_parser, request_body, sniff_image
from img2img_client.doctor import Report, check_deployment, check_endpoint
from img2img_client.drop import Dropped, inbox_key, is_result_of, metadata_for
from img2img_client.errors import ClientError, ConfigurationError, RequestRejected, ServiceFailed, UsageError
from img2img_client.progress import Progress
from img2img_client.results import Outcome, outcome_of, wait_for_job
from img2img_client.stack import Target, TargetOptions, resolve_target, stack_target

pytestmark = pytest.mark.unit

API_URL = "https://abc123defg.execute-api.us-west-2.amazonaws.com/prod/"
REGION = "us-west-2"


# --- HTTP ------------------------------------------------------------------------------------


class Canned(BaseAdapter):
    """A transport that answers from a list and records what was sent."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


def api_with(adapter: Canned, **kwargs: Any) -> Img2ImgApi:
    session = requests.Session()
    session.mount("https://", adapter)
    return Img2ImgApi(API_URL, session=session, **kwargs)


def test_sigv4_signs_for_execute_api_in_the_url_region() -> None:
    adapter = Canned((200, {"job_id": "j1", "status": "QUEUED"}))
    credentials = Credentials("AKIDEXAMPLE", "secret", "session-token")
    api = api_with(adapter, auth=SigV4(credentials, region_of_execute_api(API_URL) or ""))
    api.submit({"text_prompts": [{"text": "x"}]}, idempotency_key="key-1")
    sent = adapter.sent[0]
    assert sent.url == API_URL.rstrip("/") + "/v1/jobs"
    authorization = str(sent.headers["Authorization"])
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert f"/{REGION}/execute-api/aws4_request" in authorization
    assert "SignedHeaders=content-type;host;idempotency-key;x-amz-date;x-amz-security-token" in authorization
    assert sent.headers["X-Amz-Security-Token"] == "session-token"
    assert sent.headers["Idempotency-Key"] == "key-1"
    assert "x-api-key" not in sent.headers


def test_an_api_key_goes_in_x_api_key() -> None:
    adapter = Canned((200, {"status": "ok"}))
    api_with(adapter, api_key="k-123").health()
    assert adapter.sent[0].headers["x-api-key"] == "k-123"


@pytest.mark.parametrize(
    ("status", "body", "error", "needle"),
    [
        (403, {"message": "Missing Authentication Token"}, ConfigurationError, "not authorized (403)"),
        (401, {"message": "Unauthorized"}, ConfigurationError, "SigV4"),
        (400, {"error": {"code": "invalid_request", "message": "bad",
                         "details": [{"field": "seed", "message": "too big"}]}},
         RequestRejected, "400 invalid_request): bad (seed: too big)"),
        (503, {"error": {"code": "model_unavailable", "message": "end of life", "details": []}},
         ServiceFailed, "model_unavailable"),
        (500, b"<html>oops</html>", ServiceFailed, "http_500"),
    ],
)  # fmt: skip
def test_http_errors_map_to_exit_codes(status: int, body: Any, error: type[ClientError], needle: str) -> None:
    with pytest.raises(error) as raised:
        api_with(Canned((status, body))).models()
    assert needle in raised.value.message


def test_a_body_that_is_not_json_is_a_service_failure() -> None:
    with pytest.raises(ServiceFailed, match="not JSON"):
        api_with(Canned((200, b"<html>"))).models()
    with pytest.raises(ServiceFailed, match="not an object"):
        api_with(Canned((200, [1, 2]))).models()


def test_region_of_execute_api() -> None:
    assert region_of_execute_api(API_URL) == REGION
    assert region_of_execute_api("http://127.0.0.1:3000") is None
    assert region_of_execute_api("https://api.example.com/v1") is None


def test_waiting_gives_up_past_the_timeout() -> None:
    class Queued:
        def job(self, job_id: str) -> dict[str, Any]:
            return {"job_id": job_id, "status": "QUEUED"}

    again = "img2img status j1 --local --wait"
    with pytest.raises(ClientError) as raised:
        wait_for_job(
            Queued(), "j1", timeout=0, progress=Progress(enabled=False), sleep=lambda s: None, again=again
        )
    assert raised.value.exit_code == errors.UNREACHABLE and raised.value.message.endswith(f": {again}")


# --- where the service is ----------------------------------------------------------------


def outputs(**extra: str) -> list[dict[str, str]]:
    values = {
        "ApiUrl": API_URL,
        "InputBucketName": "in-bucket",
        "OutputBucketName": "out-bucket",
        "ApiAuthMode": "iam",
        **extra,
    }
    return [{"OutputKey": k, "OutputValue": v} for k, v in values.items()]


def stack_reply(status: str = "UPDATE_COMPLETE", outs: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "Img2Img-dev",
                "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                "StackStatus": status,
                "Outputs": outputs() if outs is None else outs,
            }
        ]
    }


class StubbedSession:
    """A boto3 Session whose clients answer from Stubbers."""

    def __init__(self) -> None:
        self._session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name=REGION)
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}
        self.region_name = REGION

    def client(self, service: str, **kwargs: Any) -> Any:
        if service not in self.clients:
            self.clients[service] = self._session.client(service, region_name=REGION)
            self.stubbers[service] = Stubber(self.clients[service])
            self.stubbers[service].activate()
        return self.clients[service]

    def stub(self, service: str) -> Stubber:
        self.client(service)
        return self.stubbers[service]

    def verify(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def aws() -> Iterator[StubbedSession]:
    session = StubbedSession()
    yield session
    session.verify()


def test_a_stack_is_found_by_its_outputs(aws: StubbedSession) -> None:
    aws.stub("cloudformation").add_response("describe_stacks", stack_reply(), {"StackName": "Img2Img-dev"})
    target = stack_target(TargetOptions(env="dev"), aws)
    assert (target.api_url, target.auth, target.region) == (API_URL, "iam", REGION)
    assert (target.input_bucket, target.output_bucket) == ("in-bucket", "out-bucket")


def test_an_api_key_stack_reads_its_key(aws: StubbedSession) -> None:
    reply = stack_reply(outs=outputs(ApiAuthMode="api_key", ApiKeyId="key-id"))
    aws.stub("cloudformation").add_response("describe_stacks", reply, {"StackName": "Img2Img-staging"})
    aws.stub("apigateway").add_response(
        "get_api_key", {"id": "key-id", "value": "secret-key"}, {"apiKey": "key-id", "includeValue": True}
    )
    target = stack_target(TargetOptions(env="staging"), aws)
    assert target.auth == "api_key" and target.api_key == "secret-key"


def test_a_missing_stack_or_output_says_what_to_do(aws: StubbedSession) -> None:
    aws.stub("cloudformation").add_client_error(
        "describe_stacks", "ValidationError", "Stack with id Img2Img-qa does not exist"
    )
    with pytest.raises(ConfigurationError, match="no stack Img2Img-qa in us-west-2: deploy it"):
        stack_target(TargetOptions(env="qa"), aws)
    aws.stub("cloudformation").add_response("describe_stacks", stack_reply(outs=outputs()[:1]))
    with pytest.raises(ConfigurationError, match="lacks the outputs InputBucketName, OutputBucketName"):
        stack_target(TargetOptions(env="dev"), aws)


def test_resolving_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMG2IMG_ENDPOINT", "IMG2IMG_API_KEY", "IMG2IMG_API_PORT", "IMG2IMG_AWS_PORT"):
        monkeypatch.delenv(name, raising=False)
    local = resolve_target(TargetOptions(local=True))
    assert local.api_url == "http://127.0.0.1:3000" and local.s3_endpoint == "http://127.0.0.1:4566"
    assert (local.input_bucket, local.output_bucket, local.auth) == (
        "img2img-local-input",
        "img2img-local-output",
        "none",
    )
    assert resolve_target(TargetOptions(endpoint=API_URL)).auth == "iam"
    assert resolve_target(TargetOptions(endpoint=API_URL, api_key="k")).auth == "api_key"
    assert resolve_target(TargetOptions(endpoint=API_URL, auth="none")).auth == "none"
    monkeypatch.setenv("IMG2IMG_ENDPOINT", "http://127.0.0.1:9999")
    assert resolve_target(TargetOptions()).api_url == "http://127.0.0.1:9999"
    with pytest.raises(UsageError, match="one of --local or --env"):
        resolve_target(TargetOptions(local=True, env="dev"))
    monkeypatch.delenv("IMG2IMG_ENDPOINT")
    with pytest.raises(UsageError, match="say where the service is"):
        resolve_target(TargetOptions())
    with pytest.raises(UsageError, match="the S3 door needs the buckets"):
        resolve_target(TargetOptions(endpoint=API_URL)).buckets()


def test_iam_auth_needs_credentials_and_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    signed = Target(api_url=API_URL, auth="iam", region=None, static_credentials=("a", "b")).api()
    assert signed.base_url == API_URL.rstrip("/")
    with pytest.raises(UsageError, match="--region"):
        Target(api_url="http://10.0.0.1/", auth="iam", region=None, static_credentials=("a", "b")).api()
    with pytest.raises(ConfigurationError, match="API key"):
        Target(api_url=API_URL, auth="api_key", region=REGION).api()


# --- doctor ------------------------------------------------------------------------------


class FakeApi:
    def __init__(self, default: str, *allowed: str) -> None:
        self.listing = {"default": default, "models": [{"id": m} for m in (default, *allowed)]}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "environment": "dev", "version": "0.1.0"}

    def models(self) -> dict[str, Any]:
        return self.listing


def foundation_model(
    model_id: str, status: str = "ACTIVE", inference: tuple[str, ...] = ("ON_DEMAND",)
) -> dict[str, Any]:
    return {
        "modelDetails": {
            "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}",
            "modelId": model_id,
            "modelName": "A model",
            "providerName": "Acme",
            "inferenceTypesSupported": list(inference),
            "modelLifecycle": {"status": status},
        }
    }


def available(model_id: str, entitlement: str = "AVAILABLE") -> dict[str, Any]:
    return {
        "modelId": model_id,
        "agreementAvailability": {"status": "AVAILABLE"},
        "authorizationStatus": "AUTHORIZED",
        "entitlementAvailability": entitlement,
        "regionAvailability": "AVAILABLE",
    }


def doctor(aws: StubbedSession, api: FakeApi | None, extra: str | None = None) -> Report:
    def api_for(target: Target) -> Any:
        if api is None:
            raise ConfigurationError("GET /v1/health: not authorized (403): Forbidden")
        return api

    return check_deployment("dev", aws.client, region=REGION, extra_model=extra, api_for=api_for)


def verdicts(report: Report) -> dict[str, str]:
    return {c.name: c.verdict for c in report.checks}


def stub_identity_and_stack(aws: StubbedSession) -> None:
    aws.stub("sts").add_response(
        "get_caller_identity",
        {"UserId": "u", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me"},
    )
    aws.stub("cloudformation").add_response("describe_stacks", stack_reply())


def test_doctor_passes_a_healthy_deployment(aws: StubbedSession) -> None:
    stub_identity_and_stack(aws)
    sd35 = "stability.sd3-5-large-v1:0"
    aws.stub("bedrock").add_response(
        "get_foundation_model", foundation_model(sd35), {"modelIdentifier": sd35}
    )
    aws.stub("bedrock").add_response("get_foundation_model_availability", available(sd35), {"modelId": sd35})
    report = doctor(aws, FakeApi(sd35))
    assert report.ok, report.render()
    assert verdicts(report) == {
        "region": "ok", "credentials": "ok", "stack": "ok", "outputs": "ok", "api": "ok", "models": "ok",
        f"model {sd35} (default)": "ok",
    }  # fmt: skip
    assert report.render().endswith("all checks passed")


def test_doctor_fails_a_legacy_or_retired_default_and_says_what_to_fix(aws: StubbedSession) -> None:
    stub_identity_and_stack(aws)
    sd35, ultra, structure, sdxl = (
        "stability.sd3-5-large-v1:0",
        "stability.stable-image-ultra-v1:1",
        "us.stability.stable-image-control-structure-v1:0",
        "stability.stable-diffusion-xl-v1",
    )
    bedrock = aws.stub("bedrock")
    bedrock.add_client_error("get_foundation_model", "ResourceNotFoundException", "end of its life")
    bedrock.add_response("get_foundation_model", foundation_model(ultra, status="LEGACY"))
    bedrock.add_response("get_foundation_model", foundation_model(base_model_id(structure)))
    bedrock.add_response(
        "get_foundation_model_availability", available(base_model_id(structure), entitlement="NOT_AVAILABLE")
    )
    report = doctor(aws, FakeApi(sd35, ultra, structure, sdxl))
    assert not report.ok
    found = {c.name: c for c in report.checks}
    assert found[f"model {sd35} (default)"].verdict == "fail"
    assert "does not offer it" in found[f"model {sd35} (default)"].detail
    assert "default_model_id" in found[f"model {sd35} (default)"].fix
    assert found[f"model {ultra}"].verdict == "warn" and "LEGACY" in found[f"model {ultra}"].detail
    assert (
        found[f"model {structure}"].verdict == "fail"
        and "make enable-models ENV=dev" in found[f"model {structure}"].fix
    )
    # A model the catalogue knows is retired is named so without asking Bedrock (no stub answer used).
    assert found[f"model {sdxl}"].verdict == "fail" and "2025-05-20" in found[f"model {sdxl}"].detail
    assert "problem(s) to fix" in report.render() and "fix:" in report.render()


def test_doctor_on_credentials_stack_and_api_problems(aws: StubbedSession) -> None:
    aws.stub("sts").add_client_error("get_caller_identity", "ExpiredToken", "The security token has expired")
    report = doctor(aws, FakeApi("m"))
    assert verdicts(report) == {"region": "ok", "credentials": "fail"}
    assert "aws sso login" in report.checks[-1].fix

    stub_identity_and_stack(aws)
    extra = "us.stability.sd3-5-large-v1:0"
    base = base_model_id(extra)
    aws.stub("bedrock").add_response(
        "get_foundation_model", foundation_model(base), {"modelIdentifier": base}
    )
    aws.stub("bedrock").add_response("get_foundation_model_availability", available(base))
    report = doctor(aws, None, extra=extra)
    assert verdicts(report)["api"] == "fail" and "execute-api:Invoke" in report.checks[4].fix
    assert verdicts(report)[f"model {extra}"] == "ok"  # --model: checked, not called the default

    no_region = check_deployment("dev", aws.client).checks[0]
    assert no_region.fix.startswith("pass --region") and no_region.problem == "configuration"


def test_doctor_for_an_endpoint_checks_only_the_api() -> None:
    target = Target(api_url="http://127.0.0.1:1", auth="none", region=None, local=True)
    report = check_endpoint(target, api_for=lambda t: FakeApi("m"))
    assert verdicts(report) == {"api": "ok", "models": "ok", "bedrock": "skip"} and report.ok
    assert report.to_dict()["ok"] is True


# --- the request and the S3 door ---------------------------------------------------------


def parse(*argv: str) -> Any:
    return build_parser().parse_args(["run", "x.png", "--local", *argv])


def test_request_options_become_an_sdxl_body() -> None:
    body = request_body(parse("--prompt", " a cat ", "--negative", "dogs", "--style", "anime",
                              "--strength", "0.4", "--seed", "9", "--sampler", "K_EULER",
                              "--format", "webp"))  # fmt: skip
    assert body == {
        "text_prompts": [{"text": "a cat", "weight": 1.0}, {"text": "dogs", "weight": -1.0}],
        "style_preset": "anime", "image_strength": 0.4, "seed": 9, "sampler": "K_EULER",
        "output_format": "webp",
    }  # fmt: skip
    with pytest.raises(UsageError, match=r"--cfg-scale: .*35"):
        request_body(parse("--prompt", "x", "--cfg-scale", "99"))


def test_sniffing_sources() -> None:
    assert sniff_image(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_image(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image(b"GIF89a") is None


def test_s3_metadata_round_trips_through_the_door() -> None:
    body = {
        "text_prompts": [{"text": "ein Stück Kuchen", "weight": 1.0}, {"text": "blur", "weight": -1.0}],
        "image_strength": 0.6, "seed": 12, "style_preset": "anime", "model_id": "amazon.nova-canvas-v1:0",
    }  # fmt: skip
    metadata = metadata_for(body)
    assert all(value.isascii() for value in metadata.values())
    assert decode_header(metadata["prompt"])[0][1] == "utf-8"
    assert request_from_metadata(metadata) == {k: v for k, v in body.items()}
    long_prompt = {"text_prompts": [{"text": "x" * 2100, "weight": 1.0}]}
    with pytest.raises(RequestRejected, match="over S3's 2048"):
        metadata_for(long_prompt)


def test_inbox_keys() -> None:
    assert inbox_key("cat.png", None) == "inbox/cat.png"
    assert inbox_key("cat.png", "inbox/pets/") == "inbox/pets/cat.png"
    assert inbox_key("cat.png", "/inbox/a.png") == "inbox/a.png"
    with pytest.raises(RequestRejected):
        inbox_key("cat.png", "uploads/a.png")


def dropped(**overrides: Any) -> Dropped:
    values: dict[str, Any] = {
        "bucket": "in", "key": "inbox/a.png", "etag": "abc", "version_id": None,
        "body": {"text_prompts": [{"text": "cat", "weight": 1.0}], "image_strength": 0.5},
        "metadata_key": "results/a.json", "output_bucket": "out", "previous_metadata_etag": '"old"',
    }  # fmt: skip
    values.update(overrides)
    return Dropped(**values)


def result_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "source": {"key": "inbox/a.png", "etag": '"abc"'},
        "request": {
            "text_prompts": [{"text": "cat", "weight": 1.0}],
            "image_strength": 0.5,
            "cfg_scale": 7.0,
        },
    }
    doc.update(overrides)
    return doc


def test_a_result_belongs_to_a_drop_by_object_and_parameters() -> None:
    assert is_result_of(result_doc(), dropped(), '"new"')
    assert not is_result_of(result_doc(source={"key": "inbox/b.png"}), dropped(), '"new"')
    assert not is_result_of(result_doc(source={"key": "inbox/a.png", "etag": "zzz"}), dropped(), '"new"')
    assert not is_result_of(
        result_doc(request={"text_prompts": [{"text": "dog", "weight": 1.0}]}), dropped(), '"new"'
    )
    other_strength = result_doc(
        request={"text_prompts": [{"text": "cat", "weight": 1.0}], "image_strength": 0.3}
    )
    assert not is_result_of(other_strength, dropped(), '"new"')
    versioned = dropped(version_id="v2")
    assert not is_result_of(result_doc(source={"key": "inbox/a.png", "version_id": "v1"}), versioned, '"n"')
    assert is_result_of(result_doc(source={"key": "inbox/a.png", "version_id": "v2"}), versioned, '"n"')
    # A rejection (no request) counts only once it is newer than what was there before.
    rejected = {"source": {"key": "inbox/a.png"}, "status": "FAILED"}
    assert not is_result_of(rejected, dropped(), '"old"')
    assert is_result_of(rejected, dropped(), '"new"')


# --- outcomes and progress ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        ("SUCCEEDED", None, errors.OK),
        ("CONTENT_FILTERED", None, errors.CONTENT_FILTERED),
        ("FAILED", {"code": "model_error", "message": "boom"}, errors.JOB_FAILED),
        ("FAILED", {"code": "unsupported_image", "message": "GIF"}, errors.REJECTED),
        ("FAILED", {"code": "missing_parameters", "message": "no prompt"}, errors.REJECTED),
    ],
)
def test_what_each_outcome_exits_with(status: str, error: dict[str, str] | None, code: int) -> None:
    outcome = Outcome(job_id="j1", status=status, error=error)
    assert outcome.exit_code == code and outcome.to_dict()["exit_code"] == code
    if code:
        assert "\n" not in outcome.reason and "j1" in outcome.reason


def test_an_outcome_from_metadata_alone() -> None:
    meta = {
        "job_id": "j2", "status": "SUCCEEDED", "result": {"seed": 5},
        "model": {"id": "m", "engine": "sdxl", "notes": ["cfg_scale dropped"], "emulated": True},
    }  # fmt: skip
    outcome = outcome_of({}, meta, Path("a.png"), Path("a.json"))
    assert (outcome.job_id, outcome.seed, outcome.model_id) == ("j2", 5, "m")
    assert outcome.notes[-1] == "cfg_scale dropped" and "emulated" in outcome.notes[0]
    rendered = outcome.render()
    assert "SUCCEEDED  job j2  (model m, seed 5)" in rendered and "a.png" in rendered


def test_progress_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    with Progress(quiet) as progress:
        progress.update("working")
    assert quiet.getvalue() == "" and not progress.enabled
    live = Terminal()
    with Progress(live) as progress:
        progress.update("uploading")
        progress.update("job j RUNNING")
    shown = live.getvalue()
    assert "uploading" in shown and "job j RUNNING" in shown and shown.endswith("\r\x1b[2K")
    forced_off = Terminal()
    Progress(forced_off, enabled=False).update("x")
    assert forced_off.getvalue() == ""


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for line in (
        "0  success",
        "3  CONTENT_FILTERED",
        "5  configuration",
        "6  the service or AWS could not be reached",
    ):
        assert line in text


def test_local_without_the_local_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip install "img2img[client]"` has no moto or werkzeug: `img2img local` says so."""
    import sys

    from img2img_client.cli import main

    class NoMoto:
        """Importing local mode fails as it does without the `local` extra."""

        @staticmethod
        def find_spec(name: str, *args: Any) -> None:
            if name == "img2img_local.__main__":
                raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.delitem(sys.modules, "img2img_local.__main__", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoMoto(), *sys.meta_path])
    out, err = io.StringIO(), io.StringIO()
    assert main(["local"], stdout=out, stderr=err) == errors.CONFIGURATION
    assert "local mode needs moto: pip install 'img2img[client,local]'" in err.getvalue()


def test_every_result_file_is_named_source_stem_dash_job() -> None:
    """run, drop and status name results alike: <source's name>-<job id's first 8>."""
    from img2img_client.results import result_name, source_stem

    job = "0123456789abcdef"
    assert result_name("cat", job) == "cat-01234567"
    assert source_stem({"request": {"init_image_s3_key": "inbox/trips/cat.png"}}) == "cat"
    assert source_stem({"request": {"init_image_s3_key": "uploads/u-1/ab12.jpg"}}) == "ab12"
    assert source_stem({"request": {"init_image_s3_key": f"api/{job}/source.png"}}) == "job"
    assert source_stem({}) == "job"
