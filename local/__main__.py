"""`python -m img2img_local` (make local): serve local mode until Ctrl-C. The screen gets the
banner and one line per finished job; the functions' JSON logs go to a log file (with
`--verbose`, to the screen as well)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import TextIO

from img2img_local import resources as r
from img2img_local.runner import (
    LocalStack,
    PortInUseError,
    api_auth_from_environment,
    ports_from_environment,
    start_local,
)


def banner(stack: LocalStack) -> str:
    api, aws = stack.api_url, stack.aws_url
    return f"""
img2img local mode is up.

  API            {api}  (GET {api}/v1/health, {api}/v1/docs)
  AWS (moto)     {aws}  (S3, SQS, DynamoDB; region {r.REGION}, credentials testing/testing)
  Bedrock        {stack.bedrock_url}  (emulator: a stand-in, NOT a diffusion model)
  input bucket   s3://{stack.resources.input_bucket}  (drop images under {r.INBOX_PREFIX})
  output bucket  s3://{stack.resources.output_bucket}
  jobs queue     {stack.resources.queue_url}  (dead letters: {r.JOBS_DLQ})
  jobs table     {stack.resources.table_name}

Try (from the repository's folder; docs/sample.png ships with it):
  curl -s {api}/v1/health
  mkdir -p local-output
  python3 -c 'import base64,json;print(json.dumps({{"text_prompts":[{{"text":"a watercolor landscape"}}],
    "init_image":base64.b64encode(open("docs/sample.png","rb").read()).decode()}}))' > local-output/body.json
  curl -s '{api}/v1/image-to-image?return=url' -H 'Content-Type: application/json' -d @local-output/body.json
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={r.REGION} \\
    aws --endpoint-url {aws} s3 cp docs/sample.png s3://{stack.resources.input_bucket}/{r.INBOX_PREFIX} \\
    --metadata '{{"prompt": "a watercolor landscape"}}'
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={r.REGION} \\
    aws --endpoint-url {aws} s3 ls --recursive s3://{stack.resources.output_bucket}/

{sign_in_lines(stack)}Ctrl-C stops everything, and everything local mode stored (buckets, queue, table) goes \
with it.
"""


def sign_in_lines(stack: LocalStack) -> str:
    """With api_auth "cognito": how to add a user and sign in on the page."""
    sign_in = stack.sign_in
    if sign_in is None:
        return ""
    aws = (
        f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={r.REGION} \\\n"
        f"    aws --endpoint-url {stack.aws_url}"
    )
    pool = sign_in.user_pool_id
    return f"""api_auth cognito: every API route but the page, the docs and /v1/auth-config needs a
user's ID token. User pool {pool} (moto), page client {sign_in.client_id}.
The sign-in page is EMULATED (no MFA): {sign_in.base_url}/oauth2/authorize.
Add a user, then sign in at {stack.api_url}/ :
  {aws} cognito-idp admin-create-user \\
    --user-pool-id {pool} --username you@example.com --message-action SUPPRESS \\
    --user-attributes Name=email,Value=you@example.com Name=email_verified,Value=true
  {aws} cognito-idp admin-set-user-password \\
    --user-pool-id {pool} --username you@example.com --password 'Choose-a-l0ng-one!' --permanent

"""


LOG_FILE = Path("local-output/local.log")


class JobLines(logging.Handler):
    """One line per finished job, from the pipeline's "job <id> <status>" record: when, which
    door, the job id, its status and how long it took."""

    def __init__(self, screen: TextIO) -> None:
        super().__init__(logging.INFO)
        self._screen = screen

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "img2img.domain.pipeline" or record.msg != "job %s %s":
            return
        job_id, status = record.args if isinstance(record.args, tuple) else ("?", "?")
        total = (getattr(record, "timings_ms", None) or {}).get("total", 0)
        door = getattr(record, "door", "?")
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        print(f"{when}  {door:<4} {job_id}  {status:<16} {total / 1000:.1f} s", file=self._screen, flush=True)


def to_log_file(path: Path) -> tuple[TextIO, TextIO]:
    """Everything written to stdout and stderr (JSON logs, metrics, warnings, library output)
    goes to `path`; answers streams to the screen's stdout and stderr."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    screen = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    screen_err = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    with path.open("a") as log:
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    return screen, screen_err


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="img2img local", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="the functions' JSON logs on the screen too")
    parser.add_argument(
        "--log-file", type=Path, default=LOG_FILE, help=f"where the logs go (default {LOG_FILE})"
    )
    args = parser.parse_args(argv)
    # Ctrl-C (and SIGTERM) stop local mode at any moment, also while it starts: every server
    # runs in a daemon thread, and the stack's context manager shuts them down on the way out.
    signal.signal(signal.SIGTERM, _stop)
    screen, screen_err = (sys.stdout, sys.stderr) if args.verbose else to_log_file(args.log_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("botocore", "werkzeug"):  # endpoint discovery and per-request lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("img2img").addHandler(JobLines(screen))
    # The S3 test event at start-up is a job-less invocation: Powertools says it published no
    # metric. Expected here, so not a warning anyone should read.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    try:
        with start_local(**ports_from_environment(), api_auth=api_auth_from_environment()) as stack:
            stack.wait_healthy(timeout=30)
            print(banner(stack), file=screen, flush=True)
            if not args.verbose:
                print(f"logs: {args.log_file}   one line per job:", file=screen, flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping local mode...", file=screen, flush=True)
        return 0
    except (PortInUseError, ValueError) as exc:
        print(f"img2img local mode cannot start: {exc}", file=screen_err)
        return 2
    except ImportError as exc:  # the functions package (or the Bedrock emulator) is incomplete
        print(f"img2img local mode cannot start: {exc}", file=screen_err)
        return 1
    except TimeoutError as exc:
        print(f"img2img local mode started, but the API is not healthy: {exc}", file=screen_err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
