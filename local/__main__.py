"""`python -m img2img_local` (make local): serve local mode until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from types import FrameType

from img2img_local import resources as r
from img2img_local.runner import LocalStack, PortInUseError, ports_from_environment, start_local


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

Ctrl-C stops everything, and everything local mode stored (buckets, queue, table) goes with it.
"""


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("botocore", "werkzeug"):  # endpoint discovery and per-request lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The S3 test event at start-up is a job-less invocation: Powertools says it published no
    # metric. Expected here, so not a warning anyone should read.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    try:
        stack = start_local(**ports_from_environment())
    except PortInUseError as exc:
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
