"""Logger, Tracer and Metrics, made once per process. Service name and namespace come from
POWERTOOLS_* environment variables set by the stack (and by local mode)."""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="img2img")
# botocore logs signed requests (credentials, request bodies with base64 images) at DEBUG; keep
# it out of the logs even when Lambda's application log level is DEBUG.
for _name in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(logging.INFO)
tracer = Tracer(service="img2img")
metrics = Metrics(namespace="Img2Img", service="img2img")


def count_outcome(summary: dict[str, Any]) -> None:
    """One metric per finished job (JobsSucceeded, JobsFailed, JobsContentFiltered). ModelFailures,
    which feeds the model-failure alarm, counts only failures on the model's side: a user's
    bad image or missing prompt must not page anyone."""
    status = str(summary.get("status", ""))
    metrics.add_metric(name=f"Jobs{status.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    if summary.get("fallback_from"):
        # A model this environment relies on is gone: ModelFallbacks feeds its own alarm.
        metrics.add_metric(name="ModelFallbacks", unit=MetricUnit.Count, value=1)
    if status == "FAILED":
        count_failure(summary.get("error") or {})


def count_failure(error: dict[str, Any]) -> None:
    """`error` as ServiceError.to_dict() gives it. A caller who named a model (a retired one,
    one not enabled here) made a choice; the model did not fail."""
    code = str(error.get("code", ""))
    chosen = any(detail.get("field") == "model_id" for detail in error.get("details") or [])
    if code.startswith("model_") and not chosen:
        metrics.add_metric(name="ModelFailures", unit=MetricUnit.Count, value=1)
