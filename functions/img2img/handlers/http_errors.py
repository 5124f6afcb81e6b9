"""The one place that maps errors to HTTP responses, all in one JSON shape:
{"error": {"code", "message", "details": [{"field", "message"}]}}."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from img2img.domain.answers import ErrorAnswer
from img2img.domain.errors import FieldError, InvalidRequest, ModelTimeout, ServiceError
from img2img.domain.records import ErrorInfo
from img2img.domain.request import with_cross_field_errors

RETRY_AFTER_SECONDS = {429: "5", 503: "30"}


def error_response(error: ServiceError, request_id: str | None = None) -> Response[str]:
    headers: dict[str, str] = {}
    if error.retryable and error.status in RETRY_AFTER_SECONDS:
        headers["Retry-After"] = RETRY_AFTER_SECONDS[error.status]
    info = ErrorInfo.of(error)
    if isinstance(error, ModelTimeout):
        info.message += " For long-running requests use POST /v1/jobs and poll GET /v1/jobs/{job_id}."
    # job_id: the job was recorded (FAILED, with its metadata), GET /v1/jobs/{job_id} shows it.
    return _respond(error.status, info, request_id, job_id=error.job_id, headers=headers)


def plain_error(status: int, code: str, message: str, request_id: str | None = None) -> Response[str]:
    return _respond(status, ErrorInfo(code=code, message=message), request_id)


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> Response[str]:
    """A route that exists, asked with another method: 405 with the methods it takes (RFC 9110)."""
    methods = ", ".join(sorted(allowed))
    response = plain_error(405, "method_not_allowed", f"{path} takes {methods}, not {method}")
    response.headers["Allow"] = methods
    return response


def _respond(
    status: int,
    info: ErrorInfo,
    request_id: str | None,
    *,
    job_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    # request_id: what to quote to an operator; the logs hold the details a 5xx body leaves out.
    body = ErrorAnswer(error=info, job_id=job_id, request_id=request_id if status >= 500 else None)
    return Response(
        status_code=status,
        content_type="application/json",
        body=body.model_dump_json(),
        headers=headers or {},
    )


def validation_error(
    exc: RequestValidationError, *, sdxl_body: bool = True, body: object = None
) -> InvalidRequest:
    """Powertools' request validation -> our InvalidRequest with one detail per field. The
    message names what was wrong: the SDXL body (`sdxl_body`: the image routes), another body,
    or the path, a header or the query."""
    details: list[FieldError] = []
    places = {str((err.get("loc") or ("body",))[0]) for err in exc.errors()}
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
    if sdxl_body:  # the rules between fields, which never ran on a body with bad fields
        details = with_cross_field_errors(details, body)
    if places == {"body"}:
        what = (
            "the request is not a valid SDXL image-to-image body"
            if sdxl_body
            else "the request body is not valid"
        )
    else:
        what = f"the request's {' and '.join(sorted(places))} {'is' if len(places) == 1 else 'are'} not valid"
    return InvalidRequest(what, details)


def proxy_response(response: Response[str]) -> dict[str, Any]:
    """An error answered before the event handler runs, as the REST proxy integration wants it."""
    headers = {"Content-Type": response.content_type or "application/json", **response.headers}
    return {
        "statusCode": response.status_code,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "body": response.body,
        "isBase64Encoded": False,
    }
