"""The `img2img` command: run an image through the API, drop one into the input bucket, look at
a job, list the models, check a deployment, or serve local mode. `img2img --help` says how.

For scripts: stdout carries the answer only (a job id, a result, or with --json exactly one JSON
document, failures included); progress and hints go to stderr. Every hint is a command that
runs as printed: it carries the target options given (--local, --env, --endpoint, --api-key...)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import sys
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn, TextIO, get_args

import botocore.exceptions

from img2img.domain.errors import InvalidRequest
from img2img.domain.request import OutputFormat, ResizeMode, Sampler, StylePreset, parse_request
from img2img_client import __version__, errors
from img2img_client.drop import drop, inbox_key, job_id_of, read_object, wait_for_metadata
from img2img_client.errors import (
    EXIT_CODES_HELP,
    ClientError,
    Problem,
    RequestRejected,
    UsageError,
    from_aws,
)
from img2img_client.progress import Progress
from img2img_client.results import (
    FINAL,
    NOT_FOUND_GRACE_SECONDS,
    Outcome,
    outcome_of,
    result_name,
    save_job_files,
    source_stem,
    wait_for_job,
    write_file,
)
from img2img_client.stack import API_KEY_ENV, ENDPOINT_ENV, TargetOptions, resolve_target

# Sources up to this size go inline (base64 inflates by a third; Lambda takes 6 MB in all);
# larger ones go to the input bucket through POST /v1/uploads.
INLINE_MAX_BYTES = 3 * 1024 * 1024
DEFAULT_TIMEOUT = 900.0
# request field -> the option that sets it (to name options in validation errors).
_OPTIONS = {
    "text_prompts": "--prompt/--negative",
    "style_preset": "--style",
    "image_strength": "--strength",
    "seed": "--seed",
    "steps": "--steps",
    "cfg_scale": "--cfg-scale",
    "sampler": "--sampler",
    "model_id": "--model",
    "resize_mode": "--resize",
    "output_format": "--format",
}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))

EXAMPLES = """\
examples:
  img2img local                                            # serve local mode (another terminal)
  img2img run cat.png --prompt "a watercolor cat" --local --out results/
  img2img run cat.png --prompt "a watercolor cat" --env dev --style digital-art --strength 0.5
  img2img drop cat.png --prompt "a watercolor cat" --local --wait --out results/
  img2img status 1a2b3c4d... --local --wait
  img2img models --local --json
  img2img doctor --env dev
"""


class _Interrupted(Exception):
    def __init__(self, job_id: str | None) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class _BadArguments(Exception):
    def __init__(self, prog: str, message: str, usage: str) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse that lets main() report bad arguments (as JSON too, with --json)."""

    def error(self, message: str) -> NoReturn:
        raise _BadArguments(self.prog, message, self.format_usage())


@dataclass
class Started:
    """A job started and not waited for: stdout gets its id (or the JSON document), stderr the
    hints."""

    job_id: str
    document: dict[str, Any]
    hints: list[str] = field(default_factory=list)


# --- arguments -------------------------------------------------------------------------------


def _where_options() -> _Parser:
    parent = _Parser(add_help=False)
    where = parent.add_argument_group("where the service is (give one)")
    where.add_argument("--env", metavar="NAME", help="the deployed stack Img2Img-NAME, found by its outputs")
    where.add_argument(
        "--endpoint",
        metavar="URL",
        help=f"the API's base URL, e.g. local mode's http://127.0.0.1:3000 (default ${ENDPOINT_ENV})",
    )
    where.add_argument(
        "--local",
        action="store_true",
        help="local mode on this machine (make local): its API, S3 and buckets",
    )
    auth = parent.add_argument_group("AWS and auth")
    auth.add_argument("--region", help="the stack's region (default: your AWS configuration)")
    auth.add_argument("--profile", help="the AWS profile to use (default: AWS_PROFILE or the default one)")
    auth.add_argument("--api-key", metavar="KEY", help=f"for APIs that use API keys (default ${API_KEY_ENV})")
    auth.add_argument(
        "--auth",
        choices=("auto", "iam", "api-key", "none"),
        default="auto",
        help="how to call the API: SigV4 with your AWS credentials (iam), x-api-key, or nothing; "
        "auto: the stack's ApiAuthMode, an API key if given, SigV4 for execute-api URLs",
    )
    output = parent.add_argument_group("output")
    output.add_argument(
        "--json", action="store_true", help="print exactly one JSON document on stdout (also on failure)"
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line (it only shows on a terminal) and no hints on stderr",
    )
    return parent


def _request_options() -> _Parser:
    parent = _Parser(add_help=False)
    req = parent.add_argument_group("the request (Stability SDXL 1.0 image-to-image)")
    req.add_argument("image", metavar="IMAGE", help="the source image: PNG, JPEG or WebP")
    req.add_argument("--prompt", required=True, metavar="TEXT", help="what the result should show")
    req.add_argument("--negative", metavar="TEXT", help="what it should not show (a negative prompt)")
    req.add_argument(
        "--style", choices=get_args(StylePreset), metavar="PRESET", help="a style preset: %(choices)s"
    )
    req.add_argument(
        "--strength",
        type=float,
        metavar="F",
        help="image_strength 0..1: near 1 the result stays close to the source (service default 0.35)",
    )
    req.add_argument("--seed", type=int, metavar="N", help="0..4294967295; 0 or none: random")
    req.add_argument("--steps", type=int, metavar="N", help="diffusion steps, 10..50 (default 30)")
    req.add_argument("--cfg-scale", type=float, metavar="F", help="prompt adherence, 0..35 (default 7)")
    req.add_argument("--sampler", choices=get_args(Sampler), metavar="NAME", help="%(choices)s")
    req.add_argument("--model", metavar="ID", help="a model id the deployment allows (img2img models)")
    req.add_argument("--resize", choices=get_args(ResizeMode), help="how to fit the source to a model size")
    req.add_argument("--format", choices=get_args(OutputFormat), help="the result's format (default png)")
    return parent


def _wait_options(parent: argparse.ArgumentParser) -> None:
    parent.add_argument("--out", metavar="DIR", type=Path, help="where to save the image and metadata")
    parent.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the result (default %(default).0f)",
    )


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="img2img",
        description="Image-to-image on Amazon Bedrock through the img2img service (or its local mode).",
        epilog=f"{EXAMPLES}\n{EXIT_CODES_HELP}",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    where, request = _where_options(), _request_options()
    epilog = EXIT_CODES_HELP

    run = commands.add_parser(
        "run",
        parents=[request, where],
        help="run one image through the API and save the result",
        description="Submit a job (large images go through POST /v1/uploads), wait for it with a "
        "progress line, and download the image and its metadata JSON into --out.",
        epilog=epilog,
        formatter_class=formatter,
    )
    _wait_options(run)
    run.add_argument(
        "--upload", action="store_true", help="send the image through /v1/uploads whatever its size"
    )
    run.add_argument(
        "--no-wait", action="store_true", help="print the job id (only it, on stdout) and return at once"
    )
    run.set_defaults(handler=cmd_run, out_default=Path("."))

    drop_cmd = commands.add_parser(
        "drop",
        parents=[request, where],
        help="put an image into the input bucket (the S3 door), optionally wait",
        description="Put IMAGE under inbox/ in the input bucket with the parameters as object metadata "
        "(x-amz-meta-prompt, ...). The result lands in the output bucket at results/<name>.<ext>.<format> "
        "with results/<name>.<ext>.json beside it (<name>.<ext>: the dropped file's whole name).",
        epilog=epilog,
        formatter_class=formatter,
    )
    s3 = drop_cmd.add_argument_group("S3 (defaults: the stack's outputs, or local mode's with --local)")
    s3.add_argument("--key", help="the object key under inbox/ (default inbox/<file name>)")
    _s3_endpoint_option(s3)
    s3.add_argument("--input-bucket", metavar="NAME")
    s3.add_argument("--output-bucket", metavar="NAME")
    _wait_options(drop_cmd)
    drop_cmd.add_argument(
        "--wait",
        action="store_true",
        help="wait for the result and download it (without it: print the job id, on stdout, and return)",
    )
    drop_cmd.set_defaults(handler=cmd_drop, out_default=Path("."))

    status = commands.add_parser(
        "status",
        parents=[where],
        help="show a job; --wait for it to end, --out to save its result",
        description="Show a job of the API or of the S3 door (drop). --out saves its image and metadata: "
        "API jobs' from presigned URLs, S3-door jobs' from the output bucket with your own S3 access "
        "(your AWS credentials, or local mode's S3 with --local).",
        epilog=epilog,
        formatter_class=formatter,
    )
    status.add_argument("job_id", metavar="JOB_ID")
    _wait_options(status)
    _s3_endpoint_option(status.add_argument_group("S3 (for S3-door jobs' results)"))
    status.add_argument(
        "--wait",
        action="store_true",
        help="wait until the job ends (a dropped image's job, not found until a worker takes it, "
        f"is waited for up to {NOT_FOUND_GRACE_SECONDS:.0f}s)",
    )
    status.set_defaults(handler=cmd_status, out_default=None)

    models = commands.add_parser(
        "models",
        parents=[where],
        help="list the models this deployment allows",
        epilog=epilog,
        formatter_class=formatter,
    )
    models.set_defaults(handler=cmd_models)

    doctor = commands.add_parser(
        "doctor",
        parents=[where],
        help="check credentials, the stack, the API and the model, and say what to fix",
        description="With --env: the environment in cdk.json (its region and models), AWS credentials, "
        "the stack Img2Img-NAME and its outputs, the API, and that each model the deployment uses or "
        "cdk.json configures is offered in the region, ACTIVE (not LEGACY or end of life) and "
        "accessible. With --endpoint or --local: the API only. Each problem is named: network, "
        "credentials, access, lifecycle or configuration.",
        epilog=epilog,
        formatter_class=formatter,
    )
    doctor.add_argument("--model", metavar="ID", help="check this model id too")
    doctor.add_argument(
        "--preflight",
        action="store_true",
        help="with --env: only what a deploy needs, before the stack exists (make deploy runs this)",
    )
    doctor.add_argument(
        "--enable-models",
        action="store_true",
        help="with --env: subscribe this account to every model cdk.json configures, then check "
        "(once per account and model region, with credentials allowed aws-marketplace:Subscribe)",
    )
    doctor.set_defaults(handler=cmd_doctor)

    local = commands.add_parser(
        "local",
        help="serve local mode until Ctrl-C (the same as make local)",
        description="Start local mode: the API on 127.0.0.1:3000, S3/SQS/DynamoDB emulation on :4566 and "
        "the Bedrock emulator on :4567 (IMG2IMG_API_PORT, IMG2IMG_AWS_PORT, IMG2IMG_BEDROCK_PORT move them).",
    )
    local.add_argument("--verbose", action="store_true", help="the functions' JSON logs on the screen too")
    local.set_defaults(handler=cmd_local)
    return parser


def _s3_endpoint_option(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--s3-endpoint", metavar="URL", help="an S3 endpoint (local mode: http://127.0.0.1:4566)"
    )


def target_options(args: argparse.Namespace) -> TargetOptions:
    return TargetOptions(
        env=args.env,
        endpoint=args.endpoint,
        local=args.local,
        region=args.region,
        profile=args.profile,
        api_key=args.api_key,
        auth=args.auth,
        s3_endpoint=getattr(args, "s3_endpoint", None),
        input_bucket=getattr(args, "input_bucket", None),
        output_bucket=getattr(args, "output_bucket", None),
    )


# --- hints: commands that run as printed --------------------------------------------------


def command_line(*argv: str) -> str:
    return " ".join(["img2img", *(shlex.quote(a) for a in argv)])


def target_argv(args: argparse.Namespace, *, s3: bool = False) -> list[str]:
    """The options the user gave that say where the service is and how to call it, to carry
    into a hint. IMG2IMG_ENDPOINT / IMG2IMG_API_KEY need nothing: the same shell has them."""
    argv: list[str] = []
    if args.local:
        argv.append("--local")
    for option, value in (
        ("--env", args.env),
        ("--endpoint", args.endpoint),
        ("--region", args.region),
        ("--profile", args.profile),
        ("--api-key", args.api_key),  # given on the command line: the hint is that user's
        ("--auth", None if args.auth == "auto" else args.auth),
        ("--s3-endpoint", getattr(args, "s3_endpoint", None) if s3 else None),
    ):
        if value:
            argv += _option_argv(option, value)
    return argv


def _option_argv(option: str, value: object) -> list[str]:
    """`--opt value`, or `--opt=value` for a value argparse would take for an option."""
    text = str(value)
    return [f"{option}={text}"] if text.startswith("-") else [option, text]


def request_argv(args: argparse.Namespace) -> list[str]:
    """IMAGE and the request options as given."""
    image = str(args.image)
    argv = [f"./{image}" if image.startswith("-") else image, *_option_argv("--prompt", args.prompt)]
    for option, value in (
        ("--negative", args.negative),
        ("--style", args.style),
        ("--strength", args.strength),
        ("--seed", args.seed),
        ("--steps", args.steps),
        ("--cfg-scale", args.cfg_scale),
        ("--sampler", args.sampler),
        ("--model", args.model),
        ("--resize", args.resize),
        ("--format", args.format),
    ):
        if value is not None:
            argv += _option_argv(option, value)
    return argv


def wait_command(args: argparse.Namespace, job_id: str, out: Path | None) -> str:
    """`img2img status JOB --wait` with the user's target options (and --out when results are
    wanted)."""
    argv = ["status", job_id, *target_argv(args, s3=True), "--wait"]
    if out is not None:
        argv += ["--out", str(out)]
    return command_line(*argv)


def _out(args: argparse.Namespace) -> Path | None:
    out: Path | None = getattr(args, "out", None) or getattr(args, "out_default", None)
    return out


# --- the request -----------------------------------------------------------------------------


def read_image(path: str) -> tuple[bytes, str]:
    """The file's bytes and content type; only PNG, JPEG and WebP are sources."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    content_type = sniff_image(data)
    if content_type is None:
        raise UsageError(f"{path} is not a PNG, JPEG or WebP image")
    return data, content_type


def sniff_image(data: bytes) -> str | None:
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The SDXL body the options describe, checked by the service's own request rules."""
    if not args.prompt.strip():
        raise UsageError("--prompt is empty: say what the result should show")
    prompts: list[dict[str, Any]] = [{"text": args.prompt.strip(), "weight": 1.0}]
    if args.negative and args.negative.strip():
        prompts.append({"text": args.negative.strip(), "weight": -1.0})
    body: dict[str, Any] = {"text_prompts": prompts}
    for field_name, value in (
        ("style_preset", args.style),
        ("image_strength", args.strength),
        ("seed", args.seed),
        ("steps", args.steps),
        ("cfg_scale", args.cfg_scale),
        ("sampler", args.sampler),
        ("model_id", args.model),
        ("resize_mode", args.resize),
        ("output_format", args.format),
    ):
        if value is not None:
            body[field_name] = value
    try:
        parse_request({**body, "init_image_s3_key": "inbox/check.png"})
    except InvalidRequest as exc:
        problems = "; ".join(f"{_option(d.field)}: {d.message}" for d in exc.details)
        raise UsageError(problems or exc.message) from exc
    return body


def _option(field_name: str) -> str:
    return _OPTIONS.get(field_name.split(".", 1)[0], field_name)


# --- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> Outcome | Started:
    data, content_type = read_image(args.image)
    body = request_body(args)
    api = resolve_target(target_options(args)).api()
    name = Path(args.image).name
    job_id: str | None = None
    try:
        with _progress(args) as progress:
            if args.upload or len(data) > INLINE_MAX_BYTES:
                progress.update(f"uploading {name} ({len(data) / 1e6:.1f} MB)")
                ticket = api.create_upload(content_type)
                max_bytes = ticket.get("max_bytes")
                if isinstance(max_bytes, int) and len(data) > max_bytes:
                    raise RequestRejected(
                        f"{name} is {len(data)} bytes; the service takes at most {max_bytes}",
                        code="image_too_large",
                    )
                api.upload(ticket, data, name, content_type)
                body["init_image_s3_key"] = ticket["init_image_s3_key"]
            else:
                body["init_image"] = base64.b64encode(data).decode("ascii")
            progress.update("submitting the job")
            job_id = str(api.submit(body, idempotency_key=uuid.uuid4().hex)["job_id"])
            again = wait_command(args, job_id, _out(args))
            if args.no_wait:
                document = {"job_id": job_id, "status": "QUEUED", "wait_command": again}
                return Started(job_id, document, [f"queued; wait for it and save the result: {again}"])
            view = wait_for_job(api, job_id, timeout=args.timeout, progress=progress, again=again)
            out = args.out or args.out_default
            image, metadata_path, metadata = save_job_files(api, view, out, Path(name).stem, progress)
    except KeyboardInterrupt as exc:
        raise _Interrupted(job_id) from exc
    return outcome_of(view, metadata, image, metadata_path)


def cmd_drop(args: argparse.Namespace) -> Outcome | Started:
    data, content_type = read_image(args.image)
    body = request_body(args)
    target = resolve_target(target_options(args))
    input_bucket, output_bucket = target.buckets()
    s3 = target.s3()
    key = inbox_key(Path(args.image).name, args.key)
    job_id: str | None = None
    try:
        with _progress(args) as progress:
            progress.update(f"putting s3://{input_bucket}/{key}")
            try:
                dropped = drop(
                    s3,
                    input_bucket=input_bucket,
                    output_bucket=output_bucket,
                    key=key,
                    data=data,
                    content_type=content_type,
                    body=body,
                )
            except RequestRejected as exc:
                if exc.code == "metadata_too_large" and target.api_url:
                    out_argv = ["--out", str(args.out)] if args.out else []
                    run = command_line("run", *request_argv(args), *target_argv(args), *out_argv)
                    exc.message += f": {run}"
                raise
            job_id = job_id_of(dropped)
            metadata_uri = f"s3://{output_bucket}/{dropped.metadata_key}"
            # Only an API can answer `status`; a drop given just buckets can only be watched in S3.
            again = wait_command(args, job_id, _out(args)) if target.api_url else None
            if not args.wait:
                document = {
                    "job_id": job_id,
                    "status": "DROPPED",
                    "source": f"s3://{input_bucket}/{key}",
                    "version_id": dropped.version_id,
                    "metadata": metadata_uri,
                    "wait_command": again,
                }
                hint = (
                    f"wait for it and save the result: {again}"
                    if again
                    else f"no API given (--env, --endpoint or --local) to wait with: look for {metadata_uri}"
                )
                return Started(job_id, document, [f"dropped s3://{input_bucket}/{key}", hint])
            document = wait_for_metadata(
                s3,
                dropped,
                timeout=args.timeout,
                progress=progress,
                again=again or "",
            )
            out: Path = args.out or args.out_default
            # <name>-<job>.json and .<format>: never the source's own name (out may be its folder).
            name = result_name(PurePosixPath(dropped.key).stem, str(document.get("job_id", "job")))
            metadata_path = write_file(out / f"{name}.json", json.dumps(document, indent=2).encode())
            image_path = None
            result = document.get("result") or {}
            if result.get("key"):
                progress.update(f"downloading s3://{result.get('bucket', output_bucket)}/{result['key']}")
                image = read_object(s3, result.get("bucket") or output_bucket, result["key"])
                image_path = write_file(out / f"{name}{PurePosixPath(result['key']).suffix}", image)
    except KeyboardInterrupt as exc:
        raise _Interrupted(job_id) from exc
    return outcome_of({}, document, image_path, metadata_path)


def cmd_status(args: argparse.Namespace) -> Outcome:
    target = resolve_target(target_options(args))
    api = target.api()
    try:
        with _progress(args) as progress:
            if args.wait:
                view = wait_for_job(
                    api,
                    args.job_id,
                    timeout=args.timeout,
                    progress=progress,
                    again=wait_command(args, args.job_id, args.out),
                    not_found_grace=min(NOT_FOUND_GRACE_SECONDS, args.timeout),
                )
            else:
                view = api.job(args.job_id)
            image = metadata_path = None
            metadata = None
            if args.out and view.get("status") in FINAL:
                image, metadata_path, metadata = save_job_files(
                    api, view, args.out, source_stem(view), progress, s3=target.s3
                )
    except KeyboardInterrupt as exc:
        raise _Interrupted(args.job_id) from exc
    outcome = outcome_of(view, metadata, image, metadata_path)
    outcome.image_url = (view.get("image") or {}).get("url")
    outcome.metadata_url = (view.get("metadata") or {}).get("url")
    outcome.image_s3_uri = (view.get("image") or {}).get("s3_uri")
    outcome.metadata_s3_uri = (view.get("metadata") or {}).get("s3_uri")
    return outcome


def cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    return resolve_target(target_options(args)).api().models()


def cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    from img2img_client.cdk_config import Configured, NotConfigured, configured
    from img2img_client.doctor import check_deployment, check_endpoint, enable_models
    from img2img_client.stack import aws_session

    if args.env:
        config: Configured | NotConfigured | ClientError
        try:
            config = configured(args.env)
        except (NotConfigured, ClientError) as exc:
            config = exc
        session = aws_session(args.profile, None)
        if args.enable_models and isinstance(config, Configured):
            return {"report": enable_models(args.env, session.client, config)}
        report = check_deployment(
            args.env,
            session.client,
            region=args.region,
            default_region=session.region_name,
            extra_model=args.model,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            config=config,
            preflight=args.preflight,
        )
    else:
        report = check_endpoint(resolve_target(target_options(args)))
    return {"report": report}


def cmd_local(args: argparse.Namespace) -> int:
    try:
        from img2img_local.__main__ import main as serve_local
    except ModuleNotFoundError as exc:  # installed without the `local` extra
        raise errors.ConfigurationError(
            f"local mode needs {exc.name or 'its packages'}: pip install 'img2img[client,local]'"
        ) from exc
    return serve_local(["--verbose"] if args.verbose else [])


# --- output ----------------------------------------------------------------------------------


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(args.stderr, enabled=False if args.quiet else None)


def _print_result(args: argparse.Namespace, result: Any) -> int:
    as_json = getattr(args, "json", False)
    hints: list[str] = []
    code = errors.OK
    if isinstance(result, Started):
        text = json.dumps(result.document) if as_json else result.job_id
        hints = result.hints
    elif isinstance(result, Outcome):
        text = json.dumps(result.to_dict()) if as_json else result.render()
        code = result.exit_code
        if result.job_id and result.status not in FINAL and args.command == "status":
            hints = [f"not done yet; wait for it: {wait_command(args, result.job_id, args.out)}"]
    elif isinstance(result, dict) and "report" in result:
        report = result["report"]
        text = json.dumps(report.to_dict()) if as_json else report.render()
        code = errors.OK if report.ok else errors.CONFIGURATION
    elif as_json:
        text = json.dumps(result)
    else:
        text = _render_models(result)
    print(text, file=args.stdout)
    if not (as_json or args.quiet):
        for hint in hints:
            print(hint, file=args.stderr)
    if isinstance(result, Outcome) and code != errors.OK:
        print(f"img2img: {result.reason}", file=args.stderr)
    return code


def _render_models(listing: dict[str, Any]) -> str:
    default = listing.get("default")
    rows = [(str(m.get("id")), str(m.get("engine", ""))) for m in listing.get("models") or []]
    width = max((len(model_id) for model_id, _ in rows), default=10)
    lines = [
        f"{model_id:<{width}}  {engine}{'  (default)' if model_id == default else ''}"
        for model_id, engine in rows
    ]
    return "\n".join(lines) if lines else "no models"


def _fail(
    args: argparse.Namespace, code: str, message: str, exit_code: int, problem: Problem | None = None
) -> int:
    """One line on stderr; with --json also the one JSON document on stdout (`problem`: network,
    credentials, access, lifecycle or configuration; null when none of these)."""
    if getattr(args, "json", False):
        error: dict[str, Any] = {"code": code, "message": message, "problem": problem}
        print(json.dumps({"error": error, "exit_code": exit_code}), file=args.stdout)
    print(f"img2img: {message}", file=args.stderr)
    return exit_code


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The command. Its own output goes to stdout/stderr (default: the process's)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _BadArguments as exc:  # argparse's own report on stderr; with --json, the document too
        if "--json" in argv:
            error = {"code": "usage", "message": f"{exc.prog}: {exc.message}", "problem": None}
            print(json.dumps({"error": error, "exit_code": errors.USAGE}), file=stdout or sys.stdout)
        (stderr or sys.stderr).write(f"{exc.usage}{exc.prog}: error: {exc.message}\n")
        return errors.USAGE
    args.stdout = stdout or sys.stdout
    args.stderr = stderr or sys.stderr
    try:
        result = args.handler(args)
        if isinstance(result, int):
            return result
        return _print_result(args, result)
    except ClientError as exc:
        return _fail(args, exc.code, exc.message, exc.exit_code, exc.problem)
    except (_Interrupted, KeyboardInterrupt) as exc:
        job_id = getattr(exc, "job_id", None)
        tail = f"; job {job_id} goes on: {wait_command(args, job_id, _out(args))}" if job_id else ""
        return _fail(args, "interrupted", f"interrupted{tail}", errors.INTERRUPTED)
    except BrokenPipeError:
        return errors.OK
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        error = from_aws("AWS", exc)
        return _fail(args, error.code, error.message, error.exit_code, error.problem)
    except Exception as exc:  # a bug: still one JSON document with --json, and the trace on stderr
        traceback.print_exc(file=args.stderr)
        message = (
            f"unexpected {type(exc).__name__}: {exc} (a bug in img2img: please report it with the trace)"
        )
        return _fail(args, "internal_error", message, errors.JOB_FAILED)
