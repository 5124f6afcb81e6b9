"""The one place that maps errors to HTTP responses, all in one JSON shape:
{"error": {"code", "message", "details": [{"field", "message"}]}}."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from img2img.domain.errors import FieldError, InvalidRequest, ModelTimeout, ServiceError

RETRY_AFTER_SECONDS = {429: "5", 503: "30"}


def error_response(error: ServiceError, request_id: str | None = None) -> Response[str]:
    headers: dict[str, str] = {}
    if error.retryable and error.status in RETRY_AFTER_SECONDS:
        headers["Retry-After"] = RETRY_AFTER_SECONDS[error.status]
    message = error.message
    if isinstance(error, ModelTimeout):
        message += " For long-running requests use POST /v1/jobs and poll GET /v1/jobs/{job_id}."
    body: dict[str, Any] = {"error": {**error.to_dict(), "message": message}}
    if error.job_id:
        # The job was recorded (FAILED, with its metadata): GET /v1/jobs/{job_id} shows it.
        body["job_id"] = error.job_id
    if error.status >= 500 and request_id:
        # What to quote to an operator: the logs hold the details this body leaves out.
        body["request_id"] = request_id
    return Response(
        status_code=error.status, content_type="application/json", body=json.dumps(body), headers=headers
    )


def plain_error(status: int, code: str, message: str, request_id: str | None = None) -> Response[str]:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "details": []}}
    if status >= 500 and request_id:
        body["request_id"] = request_id
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    """Powertools' body validation -> our InvalidRequest with one detail per field."""
    details: list[FieldError] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        cause: Any = (err.get("ctx") or {}).get("error")
        nested = getattr(cause, "errors", None)
        if isinstance(nested, list) and all(isinstance(e, FieldError) for e in nested):
            details.extend(nested)
            continue
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        if err.get("type") == "json_invalid" or (err.get("type") == "model_attributes_type" and not loc):
            field, message = "body", "the request body must be a JSON object"
        details.append(FieldError(field, message))
    return InvalidRequest("the request is not a valid SDXL image-to-image body", details)
