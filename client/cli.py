"""The `img2img` command: run an image through the API, drop one into the input bucket, look at
a job, list the models, check a deployment, or serve local mode. `img2img --help` says how."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, TextIO, get_args

from img2img.domain.errors import InvalidRequest
from img2img.domain.request import OutputFormat, ResizeMode, Sampler, StylePreset, parse_request
from img2img_client import __version__, errors
from img2img_client.drop import drop, inbox_key, read_object, wait_for_metadata
from img2img_client.errors import EXIT_CODES_HELP, ClientError, RequestRejected, UsageError
from img2img_client.progress import Progress
from img2img_client.results import FINAL, Outcome, outcome_of, save_job_files, wait_for_job, write_file
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


# --- arguments -------------------------------------------------------------------------------


def _where_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
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
    output.add_argument("--json", action="store_true", help="print one JSON object (also on failure)")
    output.add_argument(
        "-q", "--quiet", action="store_true", help="no progress line (it only shows on a terminal)"
    )
    return parent


def _request_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
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
    parser = argparse.ArgumentParser(
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
    run.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
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
    s3.add_argument("--s3-endpoint", metavar="URL", help="an S3 endpoint (local mode: http://127.0.0.1:4566)")
    s3.add_argument("--input-bucket", metavar="NAME")
    s3.add_argument("--output-bucket", metavar="NAME")
    _wait_options(drop_cmd)
    drop_cmd.add_argument("--wait", action="store_true", help="wait for the result and download it")
    drop_cmd.set_defaults(handler=cmd_drop, out_default=Path("."))

    status = commands.add_parser(
        "status",
        parents=[where],
        help="show a job; --wait for it to end, --out to save its result",
        epilog=epilog,
        formatter_class=formatter,
    )
    status.add_argument("job_id", metavar="JOB_ID")
    _wait_options(status)
    status.add_argument("--wait", action="store_true", help="wait until the job ends")
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
        description="With --env: AWS credentials, the stack Img2Img-NAME and its outputs, the API, and "
        "that each model the deployment uses is offered in the region, ACTIVE (not LEGACY or end "
        "of life) and accessible. With --endpoint or --local: the API only.",
        epilog=epilog,
        formatter_class=formatter,
    )
    doctor.add_argument("--model", metavar="ID", help="check this model id too")
    doctor.set_defaults(handler=cmd_doctor)

    local = commands.add_parser(
        "local",
        help="serve local mode until Ctrl-C (the same as make local)",
        description="Start local mode: the API on 127.0.0.1:3000, S3/SQS/DynamoDB emulation on :4566 and "
        "the Bedrock emulator on :4567 (IMG2IMG_API_PORT, IMG2IMG_AWS_PORT, IMG2IMG_BEDROCK_PORT move them).",
    )
    local.set_defaults(handler=cmd_local)
    return parser


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


def cmd_run(args: argparse.Namespace) -> Outcome | dict[str, Any]:
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
            if args.no_wait:
                return {"job_id": job_id, "status": "QUEUED"}
            view = wait_for_job(api, job_id, timeout=args.timeout, progress=progress)
            out = args.out or args.out_default
            image, metadata_path, metadata = save_job_files(api, view, out, Path(name).stem, progress)
    except KeyboardInterrupt as exc:
        raise _Interrupted(job_id) from exc
    return outcome_of(view, metadata, image, metadata_path)


def cmd_drop(args: argparse.Namespace) -> Outcome | dict[str, Any]:
    data, content_type = read_image(args.image)
    body = request_body(args)
    target = resolve_target(target_options(args))
    input_bucket, output_bucket = target.buckets()
    s3 = target.s3()
    key = inbox_key(Path(args.image).name, args.key)
    with _progress(args) as progress:
        progress.update(f"putting s3://{input_bucket}/{key}")
        dropped = drop(
            s3,
            input_bucket=input_bucket,
            output_bucket=output_bucket,
            key=key,
            data=data,
            content_type=content_type,
            body=body,
        )
        if not args.wait:
            return {
                "source": f"s3://{input_bucket}/{key}",
                "version_id": dropped.version_id,
                "metadata": f"s3://{output_bucket}/{dropped.metadata_key}",
            }
        try:
            document = wait_for_metadata(s3, dropped, timeout=args.timeout, progress=progress)
        except KeyboardInterrupt as exc:
            raise _Interrupted(None) from exc
        out: Path = args.out or args.out_default
        # <name>-<job>.json and .<format>: never the source's own name (out may be its folder).
        name = f"{PurePosixPath(dropped.key).stem}-{str(document.get('job_id', 'job'))[:8]}"
        metadata_path = write_file(out / f"{name}.json", json.dumps(document, indent=2).encode())
        image_path = None
        result = document.get("result") or {}
        if result.get("key"):
            progress.update(f"downloading s3://{result.get('bucket', output_bucket)}/{result['key']}")
            image = read_object(s3, result.get("bucket") or output_bucket, result["key"])
            image_path = write_file(out / f"{name}{PurePosixPath(result['key']).suffix}", image)
    return outcome_of({}, document, image_path, metadata_path)


def cmd_status(args: argparse.Namespace) -> Outcome:
    api = resolve_target(target_options(args)).api()
    view = api.job(args.job_id)
    try:
        with _progress(args) as progress:
            if args.wait and view.get("status") not in FINAL:
                view = wait_for_job(api, args.job_id, timeout=args.timeout, progress=progress)
            image = metadata_path = None
            metadata = None
            if args.out and view.get("status") in FINAL:
                image, metadata_path, metadata = save_job_files(api, view, args.out, "job", progress)
    except KeyboardInterrupt as exc:
        raise _Interrupted(args.job_id) from exc
    outcome = outcome_of(view, metadata, image, metadata_path)
    outcome.image_url = (view.get("image") or {}).get("url")
    outcome.metadata_url = (view.get("metadata") or {}).get("url")
    return outcome


def cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    return resolve_target(target_options(args)).api().models()


def cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    from img2img_client.doctor import check_deployment, check_endpoint
    from img2img_client.stack import aws_session

    if args.env:
        session = aws_session(args.profile, args.region)
        region = session.region_name
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        report = check_deployment(
            args.env, lambda service: session.client(service), region, args.model, api_key=api_key
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
    return serve_local()


# --- output ----------------------------------------------------------------------------------


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(args.stderr, enabled=False if args.quiet else None)


def _print_result(args: argparse.Namespace, result: Any) -> int:
    as_json = getattr(args, "json", False)
    if isinstance(result, Outcome):
        print(json.dumps(result.to_dict()) if as_json else result.render(), file=args.stdout)
        if result.exit_code != errors.OK:
            print(f"img2img: {result.reason}", file=args.stderr)
        return result.exit_code
    if isinstance(result, dict) and "report" in result:
        report = result["report"]
        print(json.dumps(report.to_dict()) if as_json else report.render(), file=args.stdout)
        return errors.OK if report.ok else errors.CONFIGURATION
    if as_json:
        text = json.dumps(result)
    elif args.command == "models":
        text = _render_models(result)
    elif args.command == "run":
        text = f"QUEUED  job {result['job_id']}\n  see it: img2img status {result['job_id']} --wait"
    else:
        text = f"dropped {result['source']}\n  the result's metadata will be at {result['metadata']}"
    print(text, file=args.stdout)
    return errors.OK


def _render_models(listing: dict[str, Any]) -> str:
    default = listing.get("default")
    rows = [(str(m.get("id")), str(m.get("engine", ""))) for m in listing.get("models") or []]
    width = max((len(model_id) for model_id, _ in rows), default=10)
    lines = [
        f"{model_id:<{width}}  {engine}{'  (default)' if model_id == default else ''}"
        for model_id, engine in rows
    ]
    return "\n".join(lines) if lines else "no models"


def _fail(args: argparse.Namespace, code: str, message: str, exit_code: int) -> int:
    if getattr(args, "json", False):
        error = {"error": {"code": code, "message": message}, "exit_code": exit_code}
        print(json.dumps(error), file=args.stdout)
    print(f"img2img: {message}", file=args.stderr)
    return exit_code


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The command. Its own output goes to stdout/stderr (default: the process's)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.stdout = stdout or sys.stdout
    args.stderr = stderr or sys.stderr
    try:
        result = args.handler(args)
        if isinstance(result, int):
            return result
        return _print_result(args, result)
    except ClientError as exc:
        return _fail(args, exc.code, exc.message, exc.exit_code)
    except (_Interrupted, KeyboardInterrupt) as exc:
        job_id = getattr(exc, "job_id", None)
        tail = f"; job {job_id} goes on: img2img status {job_id} --wait" if job_id else ""
        return _fail(args, "interrupted", f"interrupted{tail}", errors.INTERRUPTED)
    except BrokenPipeError:
        return errors.OK
