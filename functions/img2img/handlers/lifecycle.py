"""The lifecycle watch: an EventBridge schedule -> GetFoundationModel for every configured model
(allowed and fallback, by base id) -> metrics ModelsNotActive and ModelLifecycleUnknown, which
the ModelLifecycle alarm watches. Per-model problems never raise: an error here means the watch
itself is broken, and that has its own alarm."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from img2img.adapters.model_catalog import FoundationModels, bedrock_client
from img2img.config import Settings, get_settings
from img2img.domain.lifecycle import ModelStatus, check_models
from img2img.handlers.observability import logger, metrics, tracer

MODELS_NOT_ACTIVE = "ModelsNotActive"
MODEL_LIFECYCLE_UNKNOWN = "ModelLifecycleUnknown"
# Lookups stop with this much time left, so the report and its metrics still go out: a timeout
# would publish nothing and leave the alarm on the previous verdict.
TIME_MARGIN_MS = 10_000

_models: FoundationModels | None = None


def build(bedrock: Any) -> None:
    """Use this `bedrock` client instead of building one (tests, local mode)."""
    global _models
    _models = FoundationModels(bedrock)


def reset() -> None:
    global _models
    _models = None


def _foundation_models(settings: Settings) -> FoundationModels:
    # Built on first use, not at import: tests and local mode set the environment first.
    if _models is None:
        build(bedrock_client(settings.bedrock_region))
    assert _models is not None
    return _models


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    # The same dimensions as the other functions' metrics: one environment's alarm only. Set
    # once: they persist across invocations (setting them again only makes Powertools warn).
    if metrics.default_dimensions.get("environment") != settings.env:
        metrics.set_default_dimensions(environment=settings.env)
    models = _foundation_models(settings)

    def lookup(model_id: str) -> ModelStatus:
        if context.get_remaining_time_in_millis() < TIME_MARGIN_MS:
            return ModelStatus(model_id, "UNKNOWN", "not checked: the invocation ran out of time")
        return models.status(model_id)

    report = check_models(settings.allowed_model_ids + settings.fallback_model_ids, lookup)
    metrics.add_metric(name=MODELS_NOT_ACTIVE, unit=MetricUnit.Count, value=report.not_active)
    metrics.add_metric(name=MODEL_LIFECYCLE_UNKNOWN, unit=MetricUnit.Count, value=report.unknown)
    for model in report.models:
        extra = {
            "model_id": model.model_id,
            "lifecycle": model.status,
            "detail": model.detail,
            "end_of_life": model.end_of_life,
        }
        if model.status == "ACTIVE":
            logger.info(f"model {model.model_id} is ACTIVE", extra=extra)
        else:
            # LEGACY/GONE need a change in cdk.json; UNKNOWN means this check could not see.
            logger.warning(f"model {model.model_id} is {model.status}: {model.detail}", extra=extra)
    logger.info(
        "lifecycle check done",
        extra={"scheduled_at": event.get("time"), "not_active": report.not_active, "unknown": report.unknown},
    )
    return report.to_dict()
