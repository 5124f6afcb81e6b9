"""Logger, Tracer and Metrics, made once per process. Service name and namespace come from
POWERTOOLS_* environment variables set by the stack (and by local mode)."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from img2img.domain.records import ErrorInfo, Summary

logger = Logger(service="img2img")
# botocore logs signed requests (credentials, request bodies with base64 images) at DEBUG; keep
# it out of the logs even when Lambda's application log level is DEBUG.
for _name in ("botocore", "boto3", "urllib3"):
    _library = logging.getLogger(_name)
    _library.setLevel(max(logging.INFO, _library.level))  # never lower what a host (local mode) set
# Only botocore makes calls worth a subsegment here; Tracer's default patches every library the
# X-Ray SDK knows (importing sqlite3 among them) on each cold start.
tracer = Tracer(service="img2img", patch_modules=("botocore",))
metrics = Metrics(namespace="Img2Img", service="img2img")


def count_outcome(summary: Summary) -> None:
    """One metric per recorded job outcome (JobsSucceeded, JobsFailed, JobsContentFiltered),
    counted where the pipeline records it, so an idempotent replay counts nothing. ModelFailures,
    which feeds the model-failure alarm, counts only failures on the model's side: a user's bad
    image or missing prompt must not page anyone."""
    metrics.add_metric(name=f"Jobs{summary.status.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    if summary.fallback_from:
        # A model this environment relies on is gone: ModelFallbacks feeds its own alarm.
        metrics.add_metric(name="ModelFallbacks", unit=MetricUnit.Count, value=1)
    if summary.status == "FAILED" and summary.error is not None:
        count_failure(summary.error)


def count_failure(error: ErrorInfo) -> None:
    """A caller who named a model (a retired one, one not enabled here) made a choice; the
    model did not fail."""
    chosen = any(detail.field == "model_id" for detail in error.details)
    if error.code.startswith("model_") and not chosen:
        metrics.add_metric(name="ModelFailures", unit=MetricUnit.Count, value=1)


def count_undelivered_event(code: str) -> None:
    """A job's event that EventBridge refused past its retries (adapters/events.py): the job is
    unaffected, but whoever waits on the event will not hear of it. JobEventsUndelivered feeds
    its own alarm."""
    metrics.add_metric(name="JobEventsUndelivered", unit=MetricUnit.Count, value=1)
