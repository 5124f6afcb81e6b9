"""Logger, Tracer and Metrics, made once per process. Service name and namespace come from
POWERTOOLS_* environment variables set by the stack (and by local mode)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="img2img")
tracer = Tracer(service="img2img")
metrics = Metrics(namespace="Img2Img", service="img2img")


def count_outcome(status: str, door: str) -> None:
    """One metric per finished job; ModelFailures feeds the model-failure alarm."""
    if status == "FAILED":
        metrics.add_metric(name="ModelFailures", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"Jobs{status.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
