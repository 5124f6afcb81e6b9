"""The API door: API Gateway REST proxy events -> use cases in domain/api_door.py. Thin: routes,
request parsing, response shapes. Errors become responses in http_errors.py only."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import OpenAPI
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from img2img import __version__, vocabulary
from img2img.domain.answers import (
    AuthConfigAnswer,
    ErrorAnswer,
    HealthAnswer,
    JobAccepted,
    JobAnswer,
    ModelAnswer,
    ModelsAnswer,
    SignInSettings,
    SyncAnswer,
    UploadTicket,
)
from img2img.domain.caller import Caller
from img2img.domain.errors import FieldError, InvalidRequest, NoCallerIdentity, ServiceError, excerpt
from img2img.domain.records import ErrorInfo
from img2img.domain.request import ImageToImageRequest
from img2img.engines import engine_for
from img2img.handlers import http_errors, page
from img2img.handlers.observability import count_failure, logger, metrics, tracer
from img2img.handlers.wiring import Service, get_service


class _Resolver(APIGatewayRestResolver):
    """The spec documents only what the service sends. Powertools adds a 422 to every route when
    validation is on, but this service answers invalid input with 400 (http_errors.py)."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        spec = super().get_openapi_schema(*args, **kwargs)
        for item in (spec.paths or {}).values():
            for operation in (item.get, item.post):
                if operation is not None and operation.responses:
                    operation.responses.pop(422, None)
                    # A broken answer is a 500 like any other: the one error shape, not Powertools'.
                    broken = operation.responses.get(500)
                    if broken is not None and broken.content:
                        broken.description = _WHY[500]
                        for media in broken.content.values():
                            if media.schema_ is not None:
                                media.schema_.ref = "#/components/schemas/ErrorAnswer"
        if spec.components and spec.components.schemas:
            for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
                spec.components.schemas.pop(name, None)
        return spec


# An answer that breaks its own documented model is the service's bug: a 500 (internal_error),
# never a 400 blaming the caller.
app = _Resolver(enable_validation=True, response_validation_error_http_code=500)

app.enable_swagger(path=vocabulary.DOCS.path, title="img2img", version=__version__)

_WHY = {
    400: "a field breaks a rule (each bad field named in `details`), the body is not JSON, or the "
    "model is not enabled here",
    403: "no authenticated caller reached the function (a stack whose methods lost their authorizer)",
    404: "no such job of yours",
    409: "an Idempotency-Key of yours reused with another body, or (POST /v1/image-to-image only) "
    "its first request still running",
    413: "over the request or image byte cap, or over the pixel cap",
    415: "not a still PNG, JPEG or WebP, or a body not sent as application/json",
    429: "Bedrock throttled (Retry-After: 5)",
    500: "S3 or DynamoDB failed after retries, or a bug (quote request_id)",
    502: "the model failed on this input",
    503: "the model (and every fallback) is retired, not found or not accessible, or Bedrock is busy",
    504: "the model did not answer within the request's time: use POST /v1/jobs",
}


def _answers(
    ok: int, model: type[BaseModel], why: str, *errors: int, location: bool = False
) -> dict[int, OpenAPIResponse]:
    """The route's documented answers: its success body (with a Location header, `location`)
    and each error it can send (all in the one error shape)."""
    documented: dict[int, OpenAPIResponse] = {
        ok: {"description": why, "content": {"application/json": {"model": model}}}
    }
    if location:
        documented[ok]["headers"] = {
            "Location": {"description": "where to poll the job", "schema": {"type": "string"}}
        }
    for status in errors:
        documented[status] = {
            "description": _WHY[status],
            "content": {"application/json": {"model": ErrorAnswer}},
        }
    return documented


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    content_type: str = "image/png"


def _service() -> Service:
    return get_service(sync=True)


JSON_MEDIA_TYPE = "application/json"


# Declared, so the spec (and clients generated from it) carry them; read through Powertools.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="a repeat with the same key (yours) answers the first result, without a second "
        "model call; the same key with another body is a 409",
    ),
]
# Swagger's "Try it out" body for the two image routes: a valid request that runs as it is (a
# 64x64 gradient PNG, the smallest side the models take), not one made up from the schema.
EXAMPLE_BODY = {
    "text_prompts": [{"text": "a lighthouse on a cliff, watercolor", "weight": 1.0}],
    "init_image": (
        "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAUklEQVR42u3PQQkAMAzAwAzqX8OkTsUehQsxcKfu"
        "1Oan1QEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD87wEqfwOWxJVLBgAAAABJ"
        "RU5ErkJggg=="
    ),
    "image_strength": 0.35,
    "seed": 42,
}
SdxlBody = Annotated[
    ImageToImageRequest,
    Body(openapi_examples={"sample": {"summary": "a 64x64 source, inline", "value": EXAMPLE_BODY}}),
]
ReturnAs = Annotated[
    str | None,
    Query(alias="return", description="`url`: leave the image's base64 out and answer its presigned URL"),
]


def _key(value: str | None) -> str | None:
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


@app.post(
    vocabulary.SYNC.resolver_path,
    summary="Run an SDXL image-to-image request and answer at once",
    responses=_answers(
        200, SyncAnswer, "Bedrock's SDXL answer", 400, 403, 409, 413, 415, 429, 500, 502, 503, 504
    ),
    operation_id="image_to_image",
)
def image_to_image(
    request: SdxlBody,
    idempotency_key: IdempotencyKey = None,
    return_as: ReturnAs = None,
) -> Response[SyncAnswer]:
    context = app.lambda_context
    # API Gateway's integration timeout counts from its receipt of the request, before Lambda's
    # init or SnapStart restore, which the invocation's own clock leaves out: take that lag off.
    received = app.current_event.request_context.request_time_epoch / 1000
    lag = max(0.0, time.time() - received) if received else 0.0
    answer = _service().api.run_now(
        request,
        _caller(),
        _key(idempotency_key),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000 - lag,
        want_url=return_as == "url",
    )
    return Response(status_code=200, content_type="application/json", body=answer)


@app.post(
    vocabulary.SUBMIT.resolver_path,
    summary="Queue an SDXL image-to-image request as a job",
    responses=_answers(
        202, JobAccepted, "queued: poll links.self", 400, 403, 409, 413, 415, 500, 503, location=True
    ),
    operation_id="submit_job",
)
def submit_job(request: SdxlBody, idempotency_key: IdempotencyKey = None) -> Response[JobAccepted]:
    accepted = _service().api.submit(request, _caller(), _key(idempotency_key))
    link = _as_sent(accepted.links.self_)
    accepted = accepted.model_copy(update={"links": accepted.links.model_copy(update={"self_": link})})
    return Response(
        status_code=202, content_type="application/json", body=accepted, headers={"Location": link}
    )


def _as_sent(path: str) -> str:
    """`path` as the caller's URL spells it. requestContext.path is the path the caller sent
    (`/dev/v1/jobs` on the execute-api host: the stage leads; a custom domain's base path
    likewise), `path` the API's own (`/v1/jobs`); what precedes the latter leads every link.
    https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html"""
    event = app.current_event
    sent, own = event.request_context.path or "", event.path
    return (sent[: -len(own)] if own and sent.endswith(own) else "") + path


@app.get(
    vocabulary.JOB.resolver_path,
    summary="A job's status, request and results (your own jobs only)",
    responses=_answers(200, JobAnswer, "the job", 400, 403, 404, 500),
    operation_id="get_job",
)
def get_job(
    job_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> Response[JobAnswer]:
    return Response(
        status_code=200, content_type="application/json", body=_service().api.job(job_id, _caller())
    )


@app.post(
    vocabulary.UPLOAD.resolver_path,
    summary="A presigned POST to upload a large source into your own uploads folder",
    responses=_answers(201, UploadTicket, "the upload ticket", 400, 403, 415, 500),
    operation_id="create_upload",
)
def create_upload(upload: Annotated[UploadRequest, Body()]) -> Response[UploadTicket]:
    ticket = _service().api.upload(upload.content_type, _caller())
    return Response(status_code=201, content_type="application/json", body=ticket)


@app.get(
    vocabulary.MODELS.resolver_path,
    summary="The models this environment allows and what each does with each field",
    responses=_answers(200, ModelsAnswer, "the models", 500),
    operation_id="list_models",
)
def list_models() -> ModelsAnswer:
    settings = _service().settings

    def describe(model_id: str) -> ModelAnswer:
        engine = engine_for(model_id)
        return ModelAnswer(id=model_id, engine=engine.family, fields=engine.field_support())

    return ModelsAnswer(
        default=settings.default_model_id,
        models=[describe(model_id) for model_id in settings.allowed_model_ids],
        fallbacks=[describe(model_id) for model_id in settings.fallback_model_ids],
    )


@app.get(
    vocabulary.HEALTH.resolver_path,
    summary="Liveness",
    responses=_answers(200, HealthAnswer, "alive", 500),
    operation_id="health",
)
def health() -> HealthAnswer:
    return HealthAnswer(environment=_service().settings.env, version=__version__)


@app.get(
    vocabulary.AUTH_CONFIG.resolver_path,
    summary="How callers authenticate here, and where the page signs users in (no token needed)",
    responses=_answers(200, AuthConfigAnswer, "the settings", 500),
    operation_id="auth_config",
)
def auth_config() -> AuthConfigAnswer:
    settings = _service().settings
    if settings.api_auth != "cognito":
        return AuthConfigAnswer(api_auth=settings.api_auth)
    base = str(settings.auth_base_url).rstrip("/")
    return AuthConfigAnswer(
        api_auth="cognito",
        sign_in=SignInSettings(
            # The user pool's OAuth 2.0 endpoints under its managed login domain.
            authorize_url=f"{base}/oauth2/authorize",
            token_url=f"{base}/oauth2/token",
            logout_url=f"{base}/logout",
            client_id=str(settings.auth_client_id),
            redirect_uri=str(settings.auth_redirect_uri),
            scopes=" ".join(vocabulary.SIGN_IN_SCOPES),
        ),
    )


@app.get(vocabulary.OPENAPI.resolver_path, include_in_schema=False)
def openapi() -> Response[str]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=app.get_openapi_json_schema(title="img2img", version=__version__),
    )


@app.get(vocabulary.PAGE.resolver_path, include_in_schema=False)
def web_page() -> Response[str]:
    """The page to try the service (handlers/page.py): plain HTML, CSS and JavaScript."""
    return page.page_response(app.current_event.headers.get("If-None-Match"))


def _request_id() -> str | None:
    context = app.lambda_context
    return str(context.aws_request_id) if context is not None else None


@app.exception_handler(ServiceError)
def _service_error(error: ServiceError) -> Response[str]:
    if error.job_id is None:  # a recorded job was counted where it was recorded
        count_failure(ErrorInfo.of(error))
    if error.status >= 500:
        logger.warning(
            "request failed",
            extra={"code": error.code, "error_message": error.message, "internal": error.internal},
        )
    return http_errors.error_response(error, _request_id())


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response[str]:
    image_route = (app.current_event.http_method, app.current_event.resource) in {
        (route.method, route.path) for route in vocabulary.IMAGE_REQUEST_ROUTES
    }
    body = None  # the body as sent, for the rules between its fields
    if image_route:
        with contextlib.suppress(ValueError, RecursionError):  # unreadable: no rules to add
            body = json.loads(app.current_event.body or "null")
    return http_errors.error_response(http_errors.validation_error(exc, sdxl_body=image_route, body=body))


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


@app.exception_handler(ResponseValidationError)
def _answer_broke_its_model(exc: ResponseValidationError) -> Response[str]:
    return _unexpected(exc)


@app.exception_handler(RequestUnsupportedContentType)
def _not_json(_: RequestUnsupportedContentType) -> Response[str]:
    return http_errors.plain_error(
        415, "unsupported_media_type", "send the request body as JSON with Content-Type: application/json"
    )


@app.not_found
def _not_found(_: Exception) -> Response[str]:
    event = app.current_event
    allowed = [route.method for route in vocabulary.ROUTES if route.path == event.resource]
    if allowed:
        return http_errors.method_not_allowed(event.http_method, event.path, allowed)
    return http_errors.plain_error(404, "not_found", f"no route {event.http_method} {event.path}")


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
    refused = _unless_json(event)
    if refused is not None:
        return http_errors.proxy_response(refused)  # answered before the body is read at all
    return app.resolve(event, context)


def _unless_json(event: dict[str, Any]) -> Response[str] | None:
    """A body not sent as JSON is a 415, whatever else it is: curl's default form type, text,
    or no Content-Type at all. Media types compare case-insensitively (RFC 9110), so
    `Application/JSON` is JSON: its header is spelled as the event handler expects."""
    if not event.get("body") or event.get("httpMethod") != "POST":
        return None
    for headers in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for name, value in headers.items():
            if name.lower() != "content-type":
                continue
            values = value if isinstance(value, list) else [value]
            media, _, params = str(values[-1]).partition(";")
            if media.strip().lower() != JSON_MEDIA_TYPE:
                return http_errors.plain_error(
                    415,
                    "unsupported_media_type",
                    f"the body was sent as {excerpt(media.strip())}: send it as JSON with "
                    "Content-Type: application/json",
                )
            normalized = JSON_MEDIA_TYPE + (f";{params}" if params else "")
            headers[name] = [normalized] if isinstance(value, list) else normalized
            break
        else:
            if headers is event.get("headers"):
                return http_errors.plain_error(
                    415, "unsupported_media_type", "the body has no Content-Type: send application/json"
                )
    return None
