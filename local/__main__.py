"""`python -m img2img_local` (make local): serve local mode until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from types import FrameType

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
  python3 -c 'import base64,json;print(json.dumps({{"text_prompts":[{{"text":"a watercolor landscape"}}],
    "init_image":base64.b64encode(open("docs/sample.png","rb").read()).decode()}}))' > request.json
  curl -s {api}/v1/image-to-image -H 'Content-Type: application/json' --data @request.json
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


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("botocore", "werkzeug"):  # endpoint discovery and per-request lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The S3 test event at start-up is a job-less invocation: Powertools says it published no
    # metric. Expected here, so not a warning anyone should read.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    try:
        stack = start_local(**ports_from_environment(), api_auth=api_auth_from_environment())
    except (PortInUseError, ValueError) as exc:
        print(f"img2img local mode cannot start: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # the functions package (or the Bedrock emulator) is incomplete
        print(f"img2img local mode cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with stack:
        try:
            stack.wait_healthy(timeout=30)
        except TimeoutError as exc:
            print(f"img2img local mode started, but the API is not healthy: {exc}", file=sys.stderr)
            return 1
        print(banner(stack), flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping local mode...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
