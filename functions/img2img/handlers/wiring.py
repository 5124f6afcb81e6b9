"""The composition root: settings -> boto3 clients -> adapters -> domain services, built once
per process on first use (not at import, so tests can set the environment first)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from img2img.adapters.bedrock import BedrockInvoker
from img2img.adapters.events import EventBridgeJobEvents
from img2img.adapters.jobs import JobStore
from img2img.adapters.queue import JobQueue
from img2img.adapters.s3 import ObjectStore
from img2img.config import Settings, get_settings
from img2img.domain.api_door import ApiDoor
from img2img.domain.door_settings import DoorSettings
from img2img.domain.pipeline import Pipeline
from img2img.domain.queue_worker import QueueWorker
from img2img.engines import engine_for
from img2img.handlers.observability import count_outcome, count_undelivered_event, logger, metrics

_AWS = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30)
# PutEvents answers in tens of milliseconds: a stalled call costs at most 2 x (1 + 2) s, since
# the adapter never calls again after a refused call (only after a refused entry, quickly).
_EVENTS = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1, read_timeout=2)


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the adapters use: public so that fault tests can register botocore
    event hooks on them (as AWS's own faults would arrive) instead of reaching into adapters."""

    s3: Any
    dynamodb: Any
    sqs: Any
    bedrock: Any
    events: Any


@dataclass(frozen=True)
class Service:
    settings: Settings
    api: ApiDoor
    worker: QueueWorker
    clients: Clients


def model_client_config(settings: Settings, *, sync: bool) -> Config:
    """botocore makes one attempt per call: its standard mode would retry a read timeout, and a
    model that answered slowly has run and is billed. BedrockInvoker retries only answers that
    say the model did not run (model_attempts). The read timeout is the function's own budget
    (IMG2IMG_MODEL_READ_TIMEOUT_SECONDS: the api's sync budget, the worker's timeout less a
    margin), so a slow model is never called again within one invocation; the sync route also
    ends each call at its invocation's deadline."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=3 if sync else 5,
        read_timeout=settings.model_read_timeout_seconds,
    )


def model_attempts(*, sync: bool) -> int:
    """Calls per job for throttling, not-ready and 5xx answers (never billed): the sync route
    answers 429 at once (POST /v1/jobs retries for the caller); the worker tries three times
    with backoff, then the queue brings the job back later."""
    return 1 if sync else 3


def build_service(
    settings: Settings, *, sync: bool, bedrock_client: Any = None, sleep: Callable[[float], None] = time.sleep
) -> Service:
    """`sleep` is how backoff waits (tests pass one that does not)."""
    # Metrics carry the environment, so dev and prod in one account never share an alarm.
    metrics.set_default_dimensions(environment=settings.env)
    session = boto3.session.Session()
    s3 = session.client("s3", config=_AWS.merge(Config(signature_version="s3v4")))
    dynamodb = session.client("dynamodb", config=_AWS)
    sqs = session.client("sqs", config=_AWS)
    # A job's event waits for nobody: a few quick tries, then it is counted as undelivered.
    events = session.client("events", config=_EVENTS)

    def model_client(read_timeout: float) -> Any:
        config = model_client_config(settings, sync=sync).merge(Config(read_timeout=read_timeout))
        return bedrock_client or session.client(
            "bedrock-runtime", region_name=settings.bedrock_region, config=config
        )

    bedrock = model_client(settings.model_read_timeout_seconds)
    store = ObjectStore(s3)
    jobs = JobStore(dynamodb, settings.jobs_table, settings.job_ttl_days)
    doors = door_settings(settings)
    pipeline = Pipeline(
        store=store,
        invoker=BedrockInvoker(
            bedrock,
            timeout_retries=0 if sync else settings.model_timeout_retries,
            attempts=model_attempts(sync=sync),
            sleep=sleep,
            # Calls end at the invocation's deadline (less the reserve), so an answer is stored
            # before Lambda stops the function: the sync route's and the worker's alike.
            client_for_timeout=functools.lru_cache(maxsize=32)(model_client),
        ),
        jobs=jobs,
        engines=engine_for,
        events=EventBridgeJobEvents(
            events, settings.event_bus_name, on_undelivered=count_undelivered_event, sleep=sleep
        ),
        limits=doors.image_limits,
        environment=settings.env,
        fallback_model_ids=settings.fallback_model_ids,
        on_start=lambda job: logger.set_correlation_id(job.job_id),
        on_finish=count_outcome,
        reserve_seconds=settings.model_reserve_seconds,
    )
    queue = JobQueue(sqs, settings.queue_url)
    api = ApiDoor(
        settings=doors,
        pipeline=pipeline,
        store=store,
        jobs=jobs,
        queue=queue,
        engines=engine_for,
    )
    worker = QueueWorker(
        settings=doors,
        pipeline=pipeline,
        store=store,
        queue=queue,
        on_skip=lambda reason: logger.info("skipped an event that starts no job", extra={"reason": reason}),
    )
    return Service(settings, api, worker, Clients(s3, dynamodb, sqs, bedrock, events))


def door_settings(settings: Settings) -> DoorSettings:
    """What the doors need of the settings (the in-memory test service builds them here too)."""
    return DoorSettings(
        input_bucket=settings.input_bucket,
        output_bucket=settings.output_bucket,
        allowed_model_ids=settings.allowed_model_ids,
        default_model_id=settings.default_model_id,
        max_image_bytes=settings.max_image_bytes,
        max_image_pixels=settings.max_image_pixels,
        upload_max_bytes=settings.upload_cap,
        presign_expiry_seconds=settings.presign_expiry_seconds,
    )


_built: dict[bool, Service] = {}


def get_service(*, sync: bool) -> Service:
    if sync not in _built:
        _built[sync] = build_service(get_settings(), sync=sync)
    return _built[sync]


def install(service: Service, *, sync: bool) -> None:
    """Use this service instead of building one (tests inject fakes here)."""
    _built[sync] = service


def reset() -> None:
    """Forget the built services and settings (tests and local mode change the environment)."""
    _built.clear()
    get_settings.cache_clear()


def prime() -> None:
    """What the first request would otherwise pay, done before Lambda SnapStart takes its
    snapshot (`snapstart: true` in cdk.json): the loaded handler's service (settings, boto3
    clients: they resolve credentials through botocore's refreshable chain, so a restored copy
    keeps working; no connection is opened here) and Pillow's format plugins. Nothing that must
    differ between copies is made here: ids come from uuid4 at request time, and `random` (the
    retries' jitter) is re-seeded after each restore (reseed)."""
    import sys

    from PIL import Image

    if "img2img.handlers.api" in sys.modules:
        get_service(sync=True)
    if "img2img.handlers.worker" in sys.modules:
        get_service(sync=False)
    Image.init()


def reseed() -> None:
    """Every copy restored from one snapshot would otherwise draw the same backoff jitter."""
    import random

    random.seed()


try:  # Lambda's managed Python runtimes ship SnapStart's runtime hooks; elsewhere there is no snapshot
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:
    pass
else:  # pragma: no cover - only inside Lambda's runtime
    register_before_snapshot(prime)
    register_after_restore(reseed)
