"""A manifest of 1,000 images at a realistic model latency ends with 1,000 final jobs, each
billed once: the manifest's receive only queues them, and each image runs in its own receive.

Simulated, over the in-memory fakes: a clock that each call moves on (6 s a model call, tens
of milliseconds a storage request), a worker that Lambda stops at its 120 s timeout (Killed, a
BaseException nothing in the service catches, raised by the first call past the deadline), and
a queue as SQS runs one: batches of up to 10 (the most cdk.json allows), a message deleted only
when its invocation returned without reporting it, back after its visibility timeout, and on to
the dead letters after its last receive. Seconds of CPU, not the 1.7 simulated hours."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from img2img.domain.errors import ServiceError
from img2img.domain.pipeline import Attempt
from img2img.domain.records import ManifestJobs
from img2img.handlers.queue_messages import read_message
from tests.fakes import INPUT, OUTPUT, House, png_bytes
from tests.handlers.sqs_events import s3_notification

pytestmark = pytest.mark.unit

IMAGES = 1000
MODEL_SECONDS = 6.0
TIMEOUT = 120.0  # the worker's (cdk.json worker_timeout_seconds)
VISIBILITY = 6 * TIMEOUT  # infra/config.py: six times the worker's timeout
BATCH = 10  # worker_batch_size at most
MAX_RECEIVES = 5
COSTS = {"invoke": MODEL_SECONDS, "get": 0.05, "put": 0.05, "find": 0.02, "write": 0.01, "send": 0.01}


class Killed(BaseException):
    """Lambda stopping the function at its timeout."""


@dataclass
class Message:
    body: dict[str, Any]
    receives: int = 0
    visible_at: float = 0.0


@dataclass
class Lambda:
    """The worker as Lambda runs it over SQS, on a simulated clock."""

    house: House
    now: float = 1795600800.0
    deadline: float = float("inf")
    queue: list[Message] = field(default_factory=list)
    dead_letters: list[Message] = field(default_factory=list)
    invocations: int = 0
    killed: int = 0

    def __post_init__(self) -> None:
        self.house.clock = lambda: self.now
        fakes = (self.house.model, self.house.store, self.house.jobs, self.house.queue)
        for fake in fakes:
            for name, seconds in COSTS.items():
                if hasattr(fake, name):
                    setattr(fake, name, self._timed(getattr(fake, name), seconds))

    def _timed(self, call: Callable[..., Any], seconds: float) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.now += seconds
            if self.now > self.deadline:
                raise Killed
            return call(*args, **kwargs)

        return timed

    def run(self) -> None:
        while self.queue:
            visible = [m for m in self.queue if m.visible_at <= self.now]
            if not visible:
                self.now = min(m.visible_at for m in self.queue)
                continue
            self._invoke(visible[:BATCH])

    def _invoke(self, batch: list[Message]) -> None:
        self.invocations += 1
        start = self.now
        self.deadline = start + TIMEOUT
        worker = self.house.worker
        done: list[Message] = []
        for message in batch:
            message.receives += 1
            message.visible_at = start + VISIBILITY
        try:
            for message in batch:
                read = read_message(json.dumps(message.body))
                attempt = Attempt(
                    final=message.receives >= MAX_RECEIVES, time_left=lambda: self.deadline - self.now
                )
                try:
                    worker.handle(read, attempt)  # type: ignore[arg-type]
                    done.append(message)
                except ServiceError:
                    pass  # reported as a batch item failure: back after its visibility timeout
        except Killed:
            self.killed += 1
            done = []  # the invocation never returned: nothing is deleted
        finally:
            self.deadline = float("inf")
        for message in batch:
            if message in done:
                self.queue.remove(message)
            elif message.receives >= MAX_RECEIVES:
                self.queue.remove(message)
                self.dead_letters.append(message)
        self.queue += [Message(body, visible_at=self.now) for body in self.house.queue.messages]
        self.house.queue.messages.clear()


def test_a_manifest_of_a_thousand_images_ends_with_a_thousand_final_jobs_billed_once() -> None:
    house = House()
    image = png_bytes()  # at an SDXL size: sent as it is, no resize to pay for a thousand times
    keys = [f"sources/{n:04}.png" for n in range(IMAGES)]
    for key in keys:
        house.store.add(INPUT, key, image)
    body = {"text_prompts": [{"text": "watercolour"}], "init_image_s3_keys": keys}
    put = house.store.add(INPUT, "inbox/thousand.json", json.dumps(body).encode())
    aws = Lambda(house)
    aws.queue.append(
        Message(s3_notification(INPUT, "inbox/thousand.json", version_id=put.version_id, etag=put.etag))
    )

    aws.run()

    listed = ManifestJobs.model_validate(house.meta("results/thousand.json.json"))
    assert [j.image for j in listed.jobs] == keys
    statuses = [house.jobs.get(j.job_id).status for j in listed.jobs]
    assert statuses == ["SUCCEEDED"] * IMAGES
    assert all(house.meta(j.metadata_key)["status"] == "SUCCEEDED" for j in listed.jobs)
    assert all(house.store.find(OUTPUT, j.result_key) is not None for j in listed.jobs)
    assert len(house.model.calls) == IMAGES  # one call per job
    assert aws.dead_letters == [] and aws.killed == 0
