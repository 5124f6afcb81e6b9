"""The command's output contract without a service (a fake API, S3 faked in-process by moto):
stdout carries the answer only (a job id, a result, or exactly one JSON document with --json,
failures included), hints go to stderr and run as printed, `drop` names its job, `status`
downloads S3-door results, and `doctor --env` reads cdk.json and names each kind of problem."""

from __future__ import annotations

import io
import json
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from img2img.domain.s3_door import SourceObject, job_id_for, metadata_request, request_from_metadata
from img2img_client import cli, errors
from img2img_client.cdk_config import Configured, NotConfigured, configured, find_cdk_json
from img2img_client.doctor import check_deployment
from img2img_client.drop import Dropped, inbox_key, job_id_of
from img2img_client.errors import ConfigurationError, RequestRejected, Unreachable, from_aws, problem_of
from img2img_client.progress import Progress
from img2img_client.results import wait_for_job
from img2img_client.stack import TargetOptions, stack_target
from tools.sample import sample_png

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


@dataclass
class FakeTarget:
    api_obj: Any
    s3_client: Any = None
    api_url: str | None = "http://127.0.0.1:3000"
    local: bool = True
    auth: str = "none"
    s3_calls: list[str] = field(default_factory=list)

    def api(self) -> Any:
        return self.api_obj

    def s3(self) -> Any:
        self.s3_calls.append("s3")
        return self.s3_client

    def buckets(self) -> tuple[str, str]:
        return IN, OUT


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """S3 in-process: a versioned input bucket and an output bucket."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("s3")
        for bucket in (IN, OUT):
            client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=IN, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    return path


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


def use(monkeypatch: pytest.MonkeyPatch, target: FakeTarget) -> list[TargetOptions]:
    """Every command resolves to `target`; answers the options they resolved it with."""
    seen: list[TargetOptions] = []

    def resolve(options: TargetOptions, session: Any = None) -> FakeTarget:
        seen.append(options)
        return target

    monkeypatch.setattr(cli, "resolve_target", resolve)
    return seen


def hint_lines(err: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in err.splitlines() if ": img2img " in line]


def succeeded(job_id: str = JOB, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "status": "SUCCEEDED", "model_id": "m1", "result": {"seed": 3}, **extra}


# --- run --no-wait and hints that run as printed ---------------------------------------------

TARGETS = [
    ["--local"],
    ["--endpoint", "http://127.0.0.1:3000", "--api-key", "k-123", "--auth", "api-key"],
    ["--env", "dev", "--region", "eu-west-1", "--profile", "ops"],
]


@pytest.mark.parametrize("where", TARGETS)
def test_run_no_wait_prints_only_the_job_id_and_a_hint_that_runs(
    monkeypatch: pytest.MonkeyPatch, source: Path, tmp_path: Path, where: list[str]
) -> None:
    seen = use(monkeypatch, FakeTarget(FakeApi(succeeded(files_for=None))))
    ran = img2img("run", source, "--prompt", "a cat", "--no-wait", "--out", tmp_path / "out dir", *where)
    assert ran.code == errors.OK, ran.err
    assert ran.out == f"{JOB}\n"  # for `job=$(img2img run ... --no-wait)`
    (hint,) = hint_lines(ran.err)
    argv = shlex.split(hint)
    assert argv[:3] == ["img2img", "status", JOB] and "--wait" in argv
    assert argv[argv.index("--out") + 1] == str(tmp_path / "out dir")
    for option in where:  # every target option the user gave is carried over
        assert option in argv
    # ...so the hint parses and resolves to the same target.
    again = cli.build_parser().parse_args(argv[1:])
    assert cli.target_options(again) == seen[0]


def test_the_printed_hint_runs(monkeypatch: pytest.MonkeyPatch, source: Path, tmp_path: Path) -> None:
    api = FakeApi(succeeded(image={"url": "u-img", "s3_uri": "s3://out/jobs/x.png"}), files={"u-img": PNG})
    use(monkeypatch, FakeTarget(api))
    queued = img2img("run", source, "--prompt", "a cat", "--no-wait", "--local", "--out", tmp_path)
    (hint,) = hint_lines(queued.err)
    ran = img2img(*shlex.split(hint)[1:])
    assert ran.code == errors.OK, ran.err
    assert (tmp_path / f"job-{JOB[:8]}.png").read_bytes() == PNG


def test_no_wait_json_is_one_document_and_names_the_wait_command(
    monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    use(monkeypatch, FakeTarget(FakeApi(succeeded())))
    ran = img2img("run", source, "--prompt", "a cat", "--no-wait", "--local", "--json")
    document = ran.document()
    assert document["job_id"] == JOB and document["status"] == "QUEUED"
    assert document["wait_command"] == f"img2img status {JOB} --local --wait --out ."
    assert ran.err == ""  # the hint is in the document
    quiet = img2img("run", source, "--prompt", "a cat", "--no-wait", "--local", "-q")
    assert quiet.out == f"{JOB}\n" and quiet.err == ""


def test_a_wait_that_gives_up_names_the_command_that_waits_on(
    monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    use(monkeypatch, FakeTarget(FakeApi({"job_id": JOB, "status": "RUNNING"})))
    ran = img2img("run", source, "--prompt", "x", "--endpoint", "http://h:1", "--timeout", "0", "--json")
    assert ran.code == errors.UNREACHABLE
    message = ran.document()["error"]["message"]
    assert message.endswith(f"img2img status {JOB} --endpoint http://h:1 --wait --out .")


def test_ctrl_c_names_the_command_with_the_target(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    use(monkeypatch, FakeTarget(FakeApi(succeeded())))
    monkeypatch.setattr(cli, "wait_for_job", interrupted)
    ran = img2img("run", source, "--prompt", "x", "--local")
    assert ran.code == errors.INTERRUPTED
    assert ran.err.strip().endswith(f"goes on: img2img status {JOB} --local --wait --out .")


def test_status_of_a_running_job_hints_how_to_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeTarget(FakeApi({"job_id": JOB, "status": "RUNNING"})))
    ran = img2img("status", JOB, "--env", "dev")
    assert ran.code == errors.OK and ran.out.startswith(f"RUNNING  job {JOB}")
    assert hint_lines(ran.err) == [f"img2img status {JOB} --env dev --wait"]


# --- exactly one JSON document -----------------------------------------------------------------


def test_every_subcommand_prints_one_json_document(
    monkeypatch: pytest.MonkeyPatch, s3: Any, source: Path, tmp_path: Path
) -> None:
    api = FakeApi(succeeded(image={"url": "u-img", "s3_uri": "s3://out/jobs/x.png"}), files={"u-img": PNG})
    use(monkeypatch, FakeTarget(api, s3))
    documents = {
        "run": img2img("run", source, "--prompt", "x", "--local", "--json", "--out", tmp_path),
        "run --no-wait": img2img("run", source, "--prompt", "x", "--local", "--json", "--no-wait"),
        "drop": img2img("drop", source, "--prompt", "x", "--local", "--json"),
        "status": img2img("status", JOB, "--local", "--json"),
        "models": img2img("models", "--local", "--json"),
        "doctor": img2img("doctor", "--local", "--json"),
    }
    for name, ran in documents.items():
        assert ran.code == errors.OK, (name, ran.err)
        assert ran.document(), name
    assert documents["run"].document()["image"] == str(tmp_path / f"cat-{JOB[:8]}.png")
    assert documents["doctor"].document()["ok"] is True


@pytest.mark.parametrize(
    ("argv", "code", "exit_code"),
    [
        (["run", "cat.png", "--json"], "usage", errors.USAGE),  # argparse: --prompt is missing
        (["status", "--json"], "usage", errors.USAGE),
        (["models", "--json", "--local", "--env", "dev"], "usage", errors.USAGE),
        (["run", "missing.png", "--prompt", "x", "--local", "--json"], "usage", errors.USAGE),
    ],
)
def test_failures_are_one_json_document_too(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], code: str, exit_code: int
) -> None:
    ran = img2img(*argv)
    assert ran.code == exit_code
    message = ran.document()["error"]["message"]
    # `problem` is always there (README's shape): null when the failure is none of its kinds.
    assert ran.document() == {
        "error": {"code": code, "message": message, "problem": None},
        "exit_code": exit_code,
    }
    assert ran.err.strip()  # and the reason for people on stderr


def test_a_bug_is_still_one_json_document(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(FakeApi):
        def models(self) -> dict[str, Any]:
            raise ZeroDivisionError("oops")

    use(monkeypatch, FakeTarget(Broken()))
    ran = img2img("models", "--local", "--json")
    assert ran.code == errors.JOB_FAILED
    assert ran.document()["error"]["code"] == "internal_error"
    assert "Traceback" in ran.err and "ZeroDivisionError" in ran.err


def test_an_aws_failure_names_its_problem(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    class NoNetwork:
        def head_object(self, **kwargs: Any) -> Any:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3.example")

    use(monkeypatch, FakeTarget(FakeApi(), NoNetwork()))
    ran = img2img("drop", source, "--prompt", "x", "--local", "--json")
    assert ran.code == errors.UNREACHABLE
    assert ran.document()["error"]["problem"] == "network"
    assert "network problem" in ran.document()["error"]["message"]


# --- drop: the job id ------------------------------------------------------------------------


def test_drop_prints_the_job_id_the_worker_will_give_it(
    monkeypatch: pytest.MonkeyPatch, s3: Any, source: Path
) -> None:
    use(monkeypatch, FakeTarget(FakeApi(), s3))
    ran = img2img(
        "drop", source, "--prompt", "ein Stück", "--seed", "5", "--key", "inbox/a/cat.png", "--local"
    )
    assert ran.code == errors.OK, ran.err
    job_id = ran.out.strip()
    assert ran.out == f"{job_id}\n" and len(job_id) == 32
    # What the worker does with the object it is told about: read the metadata back, name the job.
    head = s3.head_object(Bucket=IN, Key="inbox/a/cat.png")
    body = {**request_from_metadata(head["Metadata"]), "init_image_s3_key": "inbox/a/cat.png"}
    source_object = SourceObject(IN, "inbox/a/cat.png", head["VersionId"], head["ETag"].strip('"'))
    assert job_id == job_id_for(source_object, metadata_request(body).model_dump(exclude_none=True))
    hints = hint_lines(ran.err)
    assert hints == [f"img2img status {job_id} --local --wait --out ."]
    assert f"dropped s3://{IN}/inbox/a/cat.png" in ran.err


def test_drop_json_says_where_and_how_to_wait(monkeypatch: pytest.MonkeyPatch, s3: Any, source: Path) -> None:
    use(monkeypatch, FakeTarget(FakeApi(), s3))
    document = img2img("drop", source, "--prompt", "x", "--local", "--json").document()
    assert document["status"] == "DROPPED" and len(document["job_id"]) == 32
    assert document["source"] == f"s3://{IN}/inbox/cat.png"
    assert document["metadata"] == f"s3://{OUT}/results/cat.png.json"
    assert document["wait_command"] == f"img2img status {document['job_id']} --local --wait --out ."
    # Without an API (buckets only) there is no status to ask: the document says so.
    use(monkeypatch, FakeTarget(FakeApi(), s3, api_url=None))
    bare = img2img("drop", source, "--prompt", "x", "--input-bucket", IN, "--output-bucket", OUT, "--json")
    assert bare.document()["wait_command"] is None and bare.document()["job_id"]


def test_the_job_id_depends_on_the_object_version_and_the_request() -> None:
    def dropped(**overrides: Any) -> Dropped:
        values: dict[str, Any] = {
            "bucket": IN, "key": "inbox/a.png", "etag": "e1", "version_id": "v1",
            "body": {"text_prompts": [{"text": "cat", "weight": 1.0}]},
            "metadata_key": "results/a.png.json", "output_bucket": OUT, "previous_metadata_etag": None,
        }  # fmt: skip
        values.update(overrides)
        return Dropped(**values)

    first = job_id_of(dropped())
    assert first == job_id_of(dropped(etag="other"))  # a version id names the object
    assert first != job_id_of(dropped(version_id="v2"))
    assert first != job_id_of(dropped(body={"text_prompts": [{"text": "dog", "weight": 1.0}]}))
    assert job_id_of(dropped(version_id=None)) != job_id_of(dropped(version_id=None, etag="e2"))


def test_a_drop_too_large_for_metadata_names_the_run_command(
    monkeypatch: pytest.MonkeyPatch, s3: Any, source: Path
) -> None:
    use(monkeypatch, FakeTarget(FakeApi(), s3))
    prompt = "-ein Stück Kuchen " * 100  # non-ASCII travels base64-encoded: over S3's 2 KB
    ran = img2img("drop", source, "--prompt", prompt, "--local", "--key", "inbox/x/", "--wait")
    assert ran.code == errors.REJECTED
    command = ran.err.strip().rsplit("API door: ", 1)[1]
    argv = shlex.split(command)
    parsed = cli.build_parser().parse_args(argv[1:])
    assert argv[1] == "run" and parsed.prompt == prompt and parsed.local
    assert "--key" not in argv and "--wait" not in argv


def test_keys_ending_in_json_are_manifests_not_images() -> None:
    with pytest.raises(RequestRejected, match="manifest"):
        inbox_key("cat.png", "inbox/cat.json")


# --- status: S3-door results, and a job that does not exist yet ----------------------------------


def test_status_out_downloads_an_s3_door_job_with_the_users_s3(
    monkeypatch: pytest.MonkeyPatch, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=OUT, Key="results/a/cat.png.png", Body=PNG)
    meta = {"job_id": JOB, "status": "SUCCEEDED", "door": "s3", "result": {"seed": 9}}
    s3.put_object(Bucket=OUT, Key="results/a/cat.png.json", Body=json.dumps(meta).encode())
    view = succeeded(
        image={"s3_uri": f"s3://{OUT}/results/a/cat.png.png"},  # no presigned URL for S3-door jobs
        metadata={"s3_uri": f"s3://{OUT}/results/a/cat.png.json"},
    )
    target = FakeTarget(FakeApi(view), s3)
    use(monkeypatch, target)
    ran = img2img("status", JOB, "--local", "--out", tmp_path, "--json")
    assert ran.code == errors.OK, ran.err
    document = ran.document()
    assert Path(document["image"]).read_bytes() == PNG
    assert json.loads(Path(document["metadata"]).read_text()) == meta
    assert document["image_s3_uri"] == f"s3://{OUT}/results/a/cat.png.png"
    shown = img2img("status", JOB, "--local")  # without --out: where the files are, no S3 call
    assert f"s3://{OUT}/results/a/cat.png.png" in shown.out and target.s3_calls == ["s3"]


def test_status_wait_waits_for_a_job_not_found_yet() -> None:
    missing = RequestRejected("GET /v1/jobs/x rejected (404 job_not_found)", code="job_not_found")
    api = FakeApi(missing, missing, succeeded())
    quick = {"progress": Progress(enabled=False), "sleep": lambda s: None}
    view = wait_for_job(api, JOB, timeout=60, not_found_grace=60, **quick)
    assert view["status"] == "SUCCEEDED"
    with pytest.raises(RequestRejected) as raised:
        wait_for_job(FakeApi(missing), JOB, timeout=60, not_found_grace=0, **quick)
    assert raised.value.code == "job_not_found"
    with pytest.raises(RequestRejected):  # other rejections are answers at once
        wait_for_job(FakeApi(RequestRejected("bad", code="invalid")), JOB, timeout=60, not_found_grace=60,
                     **quick)  # fmt: skip


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
    # The account's checks ask the stack's region; Bedrock's, the model region.
    stack_region = ("sts", "ssm", "lambda", "apigateway", "cloudformation")
    assert clients.regions == {**dict.fromkeys(stack_region, "us-west-2"), "bedrock": "us-east-1"}
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
