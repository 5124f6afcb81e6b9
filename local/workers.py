"""More workers for local mode's queue: Lambda runs one worker instance per concurrent batch,
each its own process, up to the event source mapping's maximum concurrency; local mode runs one
poller in its own process. worker_processes() adds others, each the real worker handler behind
its own poller in a process of its own (`python -m img2img_local.workers`), polling the same
queue as the event source mapping's concurrency would. The tests and `make bench-load` use it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from img2img_local import resources as r

# The parent passes a worker's function timeout (tests shorten it with the queue's visibility).
TIMEOUT_ENV = "IMG2IMG_LOCAL_WORKER_TIMEOUT_SECONDS"


@contextmanager
def worker_processes(
    env: dict[str, str], count: int, *, timeout_seconds: float | None = None
) -> Iterator[int]:
    """Run `count` extra worker processes against local mode's queue (`env` is the stack's
    environment). Each stops when its stdin closes; stragglers are killed by their own pid."""
    child_env = {**os.environ, **env}
    if timeout_seconds is not None:
        child_env[TIMEOUT_ENV] = str(timeout_seconds)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "img2img_local.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_env,
        )
        for _ in range(count)
    ]
    try:
        yield len(procs)
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def main() -> None:
    """A worker process: the real handler behind its own poller, until stdin closes."""
    from img2img_local.aws import aws_client
    from img2img_local.poller import SqsPoller
    from img2img_local.runner import WORKER_HANDLER, import_handler

    queue_url = os.environ["IMG2IMG_QUEUE_URL"]
    sqs = aws_client("sqs", os.environ["AWS_ENDPOINT_URL"])
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    timeout = float(os.environ.get(TIMEOUT_ENV, r.WORKER_TIMEOUT_SECONDS))
    poller = SqsPoller(
        import_handler(WORKER_HANDLER),
        sqs_client=sqs,
        queue_url=queue_url,
        queue_arn=arn,
        timeout_seconds=timeout,
    ).start()
    sys.stdin.read()  # the parent closes our stdin (or dies) to stop us
    poller.stop()


if __name__ == "__main__":
    main()
