"""The API door: API Gateway REST proxy events -> use cases in domain/api_door.py. Thin: routes,
request parsing, response shapes. Errors become responses in http_errors.py only."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from img2img import __version__
from img2img.domain.caller import Caller
from img2img.domain.errors import FieldError, InvalidRequest, NoCallerIdentity, ServiceError
from img2img.domain.job import FINAL_STATUSES, JobView
from img2img.domain.request import ImageToImageRequest
from img2img.engines import engine_for
from img2img.handlers import http_errors, page
from img2img.handlers.observability import count_failure, count_outcome, logger, metrics, tracer
from img2img.handlers.wiring import Service, get_service

app = APIGatewayRestResolver(enable_validation=True)

app.enable_swagger(path="/v1/docs", title="img2img", version=__version__)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    content_type: str = "image/png"


def _service() -> Service:
    return get_service(sync=True)


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def _idempotency_key() -> str | None:
    value = app.current_event.headers.get("Idempotency-Key") or app.current_event.headers.get(
        "idempotency-key"
    )
    return value.strip() if value and value.strip() else None


def _caller() -> Caller:
    """Who API Gateway's authorizer let in: a user pool user, an API key, or an IAM principal."""
    context = app.current_event.request_context
    claims = context.authorizer.claims or {}
    identity = context.identity
    if claims.get("sub"):
        return Caller("user", str(claims["sub"]))
    if identity.api_key_id:
        return Caller("api_key", identity.api_key_id)
    principal = identity.user or identity.caller
    if principal:
        return Caller("iam", principal)
    raise NoCallerIdentity("the request carries no authenticated caller: jobs belong to callers")


def _s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _locations(result: dict[str, Any] | None, output: dict[str, Any] | None) -> dict[str, Any]:
    api = _service().api
    found: dict[str, Any] = {}
    if result and result.get("key"):
        found["image"] = {"s3_uri": _s3_uri(result["bucket"], result["key"])}
        if result["key"].startswith("jobs/"):  # the api role reads jobs/ only: no URL it cannot sign
            found["image"]["url"] = api.presign(result["bucket"], result["key"])
    if output and output.get("metadata_key"):
        found["metadata"] = {"s3_uri": _s3_uri(output["bucket"], output["metadata_key"])}
        if output["metadata_key"].startswith("jobs/"):
            found["metadata"]["url"] = api.presign(output["bucket"], output["metadata_key"])
    return found


@app.post("/v1/image-to-image", summary="Run an SDXL image-to-image request and answer at once")
def image_to_image(request: Annotated[ImageToImageRequest, Body()]) -> Response[str]:
    api = _service().api
    context = app.lambda_context
    result = api.run_now(
        request,
        _caller(),
        _idempotency_key(),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    summary = result.summary
    artifact_result = summary.get("result") or {}
    image = result.image
    want_url = (app.current_event.query_string_parameters or {}).get("return") == "url"
    if image is None and artifact_result.get("key") and not want_url:
        image = api.read_result(artifact_result["bucket"], artifact_result["key"])
    finish = artifact_result.get("finish_reason") or "ERROR"
    artifact: dict[str, Any] = {"seed": artifact_result.get("seed", 0), "finishReason": finish}
    if not want_url:
        artifact["base64"] = base64.b64encode(image).decode() if image else ""
    count_outcome(summary)
    return _json(
        200,
        {
            "result": "success",
            "artifacts": [artifact],
            "job_id": summary["job_id"],
            "status": summary["status"],
            **_locations(summary.get("result"), summary.get("output")),
            **({"error": summary["error"]} if summary.get("error") else {}),
        },
    )


@app.post("/v1/jobs", summary="Queue an SDXL image-to-image request as a job")
def submit_job(request: Annotated[ImageToImageRequest, Body()]) -> Response[str]:
    view = _service().api.submit(request, _caller(), _idempotency_key())
    job_id = view["job_id"]
    body = {"job_id": job_id, "status": view["status"], "links": {"self": f"/v1/jobs/{job_id}"}}
    response = _json(202, body)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return response


@app.get("/v1/jobs/<job_id>", summary="A job's status, request and results")
def get_job(
    job_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> Response[str]:
    view: JobView = _service().api.job(job_id, _caller())
    body = view.to_dict()
    body.update(_locations(view.result, view.output if view.status in FINAL_STATUSES else None))
    return _json(200, body)


@app.post("/v1/uploads", summary="A presigned POST to upload a large source into the input bucket")
def create_upload(upload: Annotated[UploadRequest, Body()]) -> Response[str]:
    settings = _service().settings
    key, post = _service().api.upload(upload.content_type, _caller())
    return _json(
        201,
        {
            "init_image_s3_key": key,
            "upload": {"url": post.url, "fields": post.fields, "method": "POST"},
            "max_bytes": settings.upload_cap,
            "expires_in": settings.presign_expiry_seconds,
        },
    )


@app.get("/v1/models", summary="The models this environment allows and what each does with each field")
def list_models() -> Response[str]:
    settings = _service().settings

    def describe(model_id: str) -> dict[str, Any]:
        engine = engine_for(model_id)
        return {"id": model_id, "engine": engine.family, "fields": engine.field_support()}

    return _json(
        200,
        {
            "default": settings.default_model_id,
            "models": [describe(model_id) for model_id in settings.allowed_model_ids],
            # Tried in this order, once each, when a job's model answers end of life, not found
            # or access denied.
            "fallbacks": [describe(model_id) for model_id in settings.fallback_model_ids],
        },
    )


@app.get("/v1/health", summary="Liveness")
def health() -> Response[str]:
    return _json(200, {"status": "ok", "environment": _service().settings.env, "version": __version__})


@app.get("/v1/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=app.get_openapi_json_schema(title="img2img", version=__version__),
    )


@app.get("/", include_in_schema=False)
def web_page() -> Response[str]:
    """The page to try the service (handlers/page.py): plain HTML, CSS and JavaScript."""
    return page.page_response(app.current_event.headers.get("If-None-Match"))


def _request_id() -> str | None:
    context = app.lambda_context
    return str(context.aws_request_id) if context is not None else None


@app.exception_handler(ServiceError)
def _service_error(error: ServiceError) -> Response[str]:
    count_failure(error.to_dict())
    if error.status >= 500:
        logger.warning(
            "request failed",
            extra={"code": error.code, "error_message": error.message, "internal": error.internal},
        )
    return http_errors.error_response(error, _request_id())


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response[str]:
    return http_errors.error_response(http_errors.validation_error(exc))


@app.exception_handler([ValueError, RecursionError])
def _unreadable_body(exc: Exception) -> Response[str]:
    """json.loads raises these, not a decode error, for bodies nested too deeply or with
    integers past Python's digit limit: a 400 naming the body, not a 500."""
    try:
        json.loads(app.current_event.body or "null")
    except (ValueError, RecursionError):
        return http_errors.error_response(
            InvalidRequest("the request body is not readable JSON", [FieldError("body", "not readable JSON")])
        )
    return _unexpected(exc)


@app.exception_handler(RequestUnsupportedContentType)
def _not_json(_: RequestUnsupportedContentType) -> Response[str]:
    return http_errors.plain_error(
        415, "unsupported_media_type", "send the request body as JSON with Content-Type: application/json"
    )


@app.not_found
def _not_found(_: Exception) -> Response[str]:
    return http_errors.plain_error(
        404, "not_found", f"no route {app.current_event.http_method} {app.current_event.path}"
    )


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("unexpected error")
    return http_errors.plain_error(
        500, "internal_error", "internal error: quote the request_id to the operator", _request_id()
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _service().idempotency.register_lambda_context(context)
    return app.resolve(event, context)
