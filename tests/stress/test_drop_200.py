"""200 images dropped under inbox/ at once, with the model throttling and timing out now and
then, S3 refusing writes after the model answered, a handful of bad files among them, and
three workers (local mode's poller plus two worker processes, as the event source mapping
would run them): every image ends with its metadata (SUCCEEDED, or FAILED with the bad file's
code), every good one with exactly one model call beyond the timed-out ones, nothing left in
the queue or the dead-letter queue.

Storage faults (local/storage_faults.py, S3's own 503 SlowDown in front of moto): every 20th
image's metadata write is refused past botocore's retries, after its result (the stored answer)
was written, so its first delivery gives up and the redelivery must finish from that result;
every 20th+10's metadata write is refused twice, which botocore's retries absorb."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from img2img_local.resources import OUTPUT_BUCKET, QueueSettings
from img2img_local.runner import LocalStack, start_local
from img2img_local.storage_faults import STORAGE_FAULTS
from img2img_local.workers import worker_processes
from tests import imagegen
from tests.corpus import by_name
from tests.corpus.doors import Doors
from tests.local.conftest import wait_until
from tests.stress.conftest import require_stress

require_stress()

pytestmark = [pytest.mark.local, pytest.mark.timeout(1800)]

IMAGES = 200
TIMEOUTS = 3
# PutObject attempts one write gets: botocore's (max_attempts 4 retries = 5 attempts,
# handlers/wiring.py).
WRITE_ATTEMPTS = 5
BAD = ("gif", "truncated_jpeg", "png_bomb", "animated_webp", "svg", "empty_file", "heic", "corrupt_png_crc")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with start_local(
        api_port=0, aws_port=0, bedrock_port=0, queue_settings=QueueSettings(visibility_timeout_seconds=30)
    ) as running:
        running.wait_healthy(timeout=30)
        yield running


def test_200_images_at_once_none_lost(stack: LocalStack) -> None:
    doors = Doors(stack)
    doors.reset_emulator()
    doors.set_faults(throttle_first=12, timeout_first=TIMEOUTS)
    bad = {f"drop-{n:03d}": by_name(name) for n, name in zip(range(7, IMAGES, 25), BAD, strict=False)}
    good = imagegen.png(96, 64, noise=20)
    gave_up = {f"drop-{n:03d}" for n in range(0, IMAGES, 20)} - set(bad)  # past every retry
    absorbed = {f"drop-{n:03d}" for n in range(10, IMAGES, 20)} - set(bad)  # within the retries
    STORAGE_FAULTS.clear()
    given_up = "|".join(re.escape(f"results/stress/{name}.png.json") for name in sorted(gave_up))
    metadata = "|".join(re.escape(f"results/stress/{name}.png.json") for name in sorted(absorbed))
    STORAGE_FAULTS.refuse(OUTPUT_BUCKET, given_up, times=WRITE_ATTEMPTS)
    STORAGE_FAULTS.refuse(OUTPUT_BUCKET, metadata, times=2)

    def put(n: int) -> None:
        name = f"drop-{n:03d}"
        case = bad.get(name)
        body = case.image() if case is not None and case.image is not None else good
        doors.s3.put_object(
            Bucket=doors.input, Key=f"inbox/stress/{name}.png", Body=body, Metadata={"prompt": f"image {n}"}
        )

    # 20 s workers: each model call ends within the invocation's time less the 3 s reserve, so a
    # 5 s worker on this loaded machine gave the model a 1 s read timeout, and a slow answer was
    # a model_timeout called again on redelivery (as a too-short Lambda timeout would bill twice).
    with worker_processes(stack.env, 2, timeout_seconds=20):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(IMAGES)))
        metas = {
            name: doors.wait_metadata(f"results/stress/{name}.png.json", timeout=900)
            for name in (f"drop-{n:03d}" for n in range(IMAGES))
        }
        wait_until(lambda: doors.queue_depth() == 0, timeout=300)
    failed = {name for name, meta in metas.items() if meta["status"] == "FAILED"}
    assert failed == set(bad)
    for name, case in bad.items():
        assert metas[name]["error"]["code"] == case.expected("s3").code, name
    refused = dict(STORAGE_FAULTS.refused)
    STORAGE_FAULTS.clear()
    assert refused == {
        **{f"results/stress/{name}.png.json": WRITE_ATTEMPTS for name in gave_up},
        **{f"results/stress/{name}.png.json": 2 for name in absorbed},
    }
    succeeded = [meta for meta in metas.values() if meta["status"] == "SUCCEEDED"]
    for name in gave_up:  # finished from the stored result on a later delivery
        assert metas[name]["status"] == "SUCCEEDED" and metas[name]["model"].get("replayed") is True, name
    assert not any(metas[name]["model"].get("replayed") for name in absorbed)
    assert len(succeeded) == IMAGES - len(bad)
    results = set(doors.output_keys("results/stress/"))
    assert all(meta["result"]["key"] in results for meta in succeeded)
    stats = doors.stats()
    assert stats["invocations"] == len(succeeded) + TIMEOUTS  # each timed-out call retried once
    assert stats["outcomes"]["success"] == len(succeeded)
    assert doors.dead_letters() == 0
