"""The command without a service: `doctor --env` reads cdk.json (by infra/config.py's rules) and
names each kind of problem (network, credentials, access, lifecycle, configuration)."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.stub import Stubber

from img2img_client import cli, errors
from img2img_client.cdk_config import Configured, NotConfigured, configured, find_cdk_json
from img2img_client.doctor import check_deployment
from img2img_client.errors import ConfigurationError, Unreachable, from_aws, problem_of
from img2img_client.stack import TargetOptions, stack_target
from img2img_local.sample import sample_png

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
JOB = "0123456789abcdef0123456789abcdef"
IN, OUT = "in-bucket", "out-bucket"
PNG = sample_png((64, 64))


# --- fakes -----------------------------------------------------------------------------------


class FakeApi:
    """The routes the command calls. `views` answer GET /v1/jobs/{id} in turn (an exception
    is raised); `files` answer presigned URLs."""

    def __init__(self, *views: dict[str, Any] | Exception, files: dict[str, bytes] | None = None) -> None:
        self.views = list(views)
        self.files = files or {}
        self.submitted: list[dict[str, Any]] = []

    def submit(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        self.submitted.append(body)
        return {"job_id": JOB, "status": "QUEUED"}

    def job(self, job_id: str) -> dict[str, Any]:
        view = self.views.pop(0) if len(self.views) > 1 else self.views[0]
        if isinstance(view, Exception):
            raise view
        return view

    def fetch(self, url: str) -> bytes:
        return self.files[url]

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "environment": "local", "version": "0.1.0"}

    def models(self) -> dict[str, Any]:
        return {"default": "m1", "models": [{"id": "m1", "engine": "sdxl"}]}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def document(self) -> dict[str, Any]:
        """The one JSON document on stdout: nothing before or after it."""
        decoder = json.JSONDecoder()
        document, end = decoder.raw_decode(self.out)
        assert self.out[end:].strip() == "", f"more than one document on stdout: {self.out!r}"
        assert isinstance(document, dict)
        return document


def img2img(*argv: str | Path) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([str(a) for a in argv], stdout=out, stderr=err)
    return Ran(code, out.getvalue(), err.getvalue())


# --- errors: what kind of problem --------------------------------------------------------------


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")


@pytest.mark.parametrize(
    ("exc", "problem", "error_type"),
    [
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"), "network", Unreachable),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="https://x"), "network", Unreachable),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="https://x"), "network", Unreachable),
        (botocore.exceptions.NoCredentialsError(), "credentials", ConfigurationError),
        (botocore.exceptions.PartialCredentialsError(provider="env", cred_var="x"), "credentials",
         ConfigurationError),
        (client_error("ExpiredToken"), "credentials", ConfigurationError),
        (client_error("ExpiredTokenException"), "credentials", ConfigurationError),
        (client_error("AccessDenied"), "access", ConfigurationError),
        (client_error("AccessDeniedException"), "access", ConfigurationError),
        (client_error("NoSuchBucket"), "configuration", ConfigurationError),
        (client_error("InternalError"), None, errors.ServiceFailed),
    ],
)  # fmt: skip
def test_aws_failures_are_named_for_what_they_are(
    exc: Exception, problem: str | None, error_type: type
) -> None:
    error = from_aws("get s3://b/k", exc)
    assert isinstance(error, error_type) and error.problem == problem
    if problem in ("network", "credentials", "access"):
        assert problem_of(exc) == problem


# --- doctor --env: cdk.json, and problems by name ----------------------------------------------


def test_cdk_json_environments_are_read_by_the_infra_rules(tmp_path: Path) -> None:
    dev = configured("dev", REPO / "cdk.json")
    assert dev.region == "us-west-2" and dev.default_model_id in dev.allowed_model_ids
    assert dev.model_region == "us-west-2" and dev.fallback_model_ids
    assert find_cdk_json(REPO / "client") == REPO / "cdk.json"
    with pytest.raises(NotConfigured, match="no environment 'nowhere'"):
        configured("nowhere", REPO / "cdk.json")
    # Another checkout: its own infra/config.py judges its own cdk.json.
    (tmp_path / "infra").mkdir()
    shutil.copy(REPO / "infra" / "config.py", tmp_path / "infra" / "config.py")
    context = json.loads((REPO / "cdk.json").read_text())
    block = context["context"]["img2img"]
    block["environments"]["dev"]["bedrock_region"] = "us-east-1"
    block["environments"]["qa"] = {"region": "eu-west-1", "log_retention_days": 8}
    (tmp_path / "cdk.json").write_text(json.dumps(context))
    assert configured("dev", tmp_path / "cdk.json").model_region == "us-east-1"
    with pytest.raises(ConfigurationError, match="environment 'qa': key 'log_retention_days'"):
        configured("qa", tmp_path / "cdk.json")


DEV = Configured(
    env="dev",
    source=Path("cdk.json"),
    region="us-west-2",
    bedrock_region="us-east-1",
    default_model_id="stability.sd3-5-large-v1:0",
    allowed_model_ids=("stability.sd3-5-large-v1:0",),
    fallback_model_ids=("stability.stable-image-ultra-v1:1",),
    api_auth="iam",
)


class Clients:
    """boto3 clients by service: Stubbers, or objects that raise what a test says."""

    def __init__(self, **raising: Exception) -> None:
        self.raising = raising
        self.regions: dict[str, str] = {}
        self.stubbers: dict[str, Stubber] = {}
        self._session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b")

    def __call__(self, service: str, region_name: str | None = None) -> Any:
        self.regions[service] = region_name or ""
        if service in self.raising:
            error = self.raising[service]

            class Raising:
                def __getattr__(self, name: str) -> Any:
                    def call(**kwargs: Any) -> Any:
                        raise error

                    return call

            return Raising()
        if service not in self.stubbers:
            client = self._session.client(service, region_name=region_name)
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
        return self.stubbers[service].client

    def stub(self, service: str, region: str) -> Stubber:
        self(service, region)
        return self.stubbers[service]


def identity_and_stack(clients: Clients) -> None:
    clients.stub("sts", "us-west-2").add_response(
        "get_caller_identity", {"UserId": "u", "Account": "123456789012", "Arn": "arn:aws:iam::1:user/me"}
    )
    outputs = {
        "ApiUrl": "https://abc.execute-api.us-west-2.amazonaws.com/prod/",
        "InputBucketName": IN,
        "OutputBucketName": OUT,
        "ApiAuthMode": "iam",
    }
    clients.stub("cloudformation", "us-west-2").add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "Img2Img-dev",
                    "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
    )


def test_doctor_takes_the_region_and_models_from_cdk_json() -> None:
    clients = Clients(bedrock=botocore.exceptions.ConnectTimeoutError(endpoint_url="https://bedrock"))
    identity_and_stack(clients)

    class OtherModels(FakeApi):
        def models(self) -> dict[str, Any]:
            return {"default": "stability.stable-image-ultra-v1:1",
                    "models": [{"id": "stability.stable-image-ultra-v1:1"}]}  # fmt: skip

    report = check_deployment(
        "dev", clients, default_region=None, config=DEV, api_for=lambda t: OtherModels()
    )
    found = {c.name: c for c in report.checks}
    assert found["cdk.json"].verdict == "ok"
    assert found["region"].detail.startswith("us-west-2 (from cdk.json environment dev)")
    assert clients.regions == {"sts": "us-west-2", "cloudformation": "us-west-2", "bedrock": "us-east-1"}
    # The deployed stack and cdk.json disagree: said, and every model of both is checked (both
    # defaults: the deployed one now, cdk.json's after the next deploy).
    assert (
        found["deployed models"].verdict == "warn" and "make deploy ENV=dev" in found["deployed models"].fix
    )
    assert {name for name in found if name.startswith("model ")} == {
        "model stability.stable-image-ultra-v1:1 (default)",
        "model stability.sd3-5-large-v1:0 (default)",
    }
    # Bedrock unreachable is a network problem, not a model's or the credentials'.
    model = found["model stability.sd3-5-large-v1:0 (default)"]
    assert model.problem == "network" and "network" in model.fix
    assert "network problem:" in report.render()
    # --region wins over cdk.json.
    assert check_deployment("dev", Clients(sts=botocore.exceptions.NoCredentialsError()), region="eu-west-1",
                            config=DEV).checks[1].detail.startswith("eu-west-1 (from --region)")  # fmt: skip


@pytest.mark.parametrize(
    ("sts_error", "problem", "fix"),
    [
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://sts"), "network", "network"),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="https://sts"), "network", "network"),
        (botocore.exceptions.NoCredentialsError(), "credentials", "aws configure"),
        (botocore.exceptions.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
         "credentials", "aws sso login"),
        (client_error("ExpiredToken"), "credentials", "refresh them"),
        (client_error("AccessDenied"), "access", "sts:GetCallerIdentity"),
    ],
)  # fmt: skip
def test_doctor_names_credentials_problems_for_what_they_are(
    sts_error: Exception, problem: str, fix: str
) -> None:
    report = check_deployment("dev", Clients(sts=sts_error), config=DEV)
    check = report.checks[-1]
    assert (check.name, check.verdict, check.problem) == ("credentials", "fail", problem)
    assert fix in check.fix


@pytest.mark.parametrize(
    ("stack_error", "problem"),
    [
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://cfn"), "network"),
        (client_error("ExpiredToken"), "credentials"),
        (client_error("AccessDenied"), "access"),
    ],
)
def test_doctor_names_stack_problems(stack_error: Exception, problem: str) -> None:
    clients = Clients(cloudformation=stack_error)
    clients.stub("sts", "us-west-2").add_response(
        "get_caller_identity", {"UserId": "u", "Account": "123456789012", "Arn": "arn:aws:iam::1:user/me"}
    )
    clients.stub("bedrock", "us-east-1")  # answers nothing: the models are retired or fail below
    report = check_deployment("dev", clients, config=DEV, extra_model="stability.stable-diffusion-xl-v1")
    stack = next(c for c in report.checks if c.name == "stack")
    assert stack.verdict == "fail" and stack.problem == problem
    assert "make deploy" not in stack.fix  # it is not a missing stack
    retired = next(c for c in report.checks if c.name == "model stability.stable-diffusion-xl-v1")
    assert retired.problem == "lifecycle" and retired.verdict == "fail"


def test_the_doctor_command_reads_cdk_json_without_an_aws_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(REPO)

    class Session:
        region_name = None

        def client(self, service: str, region_name: str | None = None) -> Any:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url=f"https://{service}.{region_name}")

    monkeypatch.setattr("img2img_client.stack.aws_session", lambda profile, region: Session())
    ran = img2img("doctor", "--env", "dev", "--json")
    assert ran.code == errors.CONFIGURATION
    checks = {c["name"]: c for c in ran.document()["checks"]}
    assert checks["region"]["verdict"] == "ok" and "cdk.json" in checks["region"]["detail"]
    assert checks["credentials"]["problem"] == "network"
    assert "us-west-2" in checks["credentials"]["detail"]


def test_env_targets_find_the_stack_in_the_cdk_json_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    regions: list[str | None] = []

    def session(profile: str | None, region: str | None) -> Any:
        regions.append(region)
        raise ConfigurationError("stop here")

    monkeypatch.setattr("img2img_client.stack.aws_session", session)
    for options in (TargetOptions(env="dev"), TargetOptions(env="dev", region="eu-west-1"),
                    TargetOptions(env="nowhere")):  # fmt: skip
        with pytest.raises(ConfigurationError):
            stack_target(options)
    assert regions == ["us-west-2", "eu-west-1", None]
