"""The local API Gateway: a Werkzeug server that turns each HTTP request into the REST API's
Lambda proxy event (payload 1.0), calls the api handler, and turns its proxy response back
into HTTP, with API Gateway's limits (10 MB request, 6 MB Lambda payloads, 29 s timeout).

Requests are served on threads, one handler call per request at once: on AWS concurrent
requests run in separate Lambda instances, so handlers must tolerate concurrency anyway, and a
slow job must not block /v1/health."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from img2img import vocabulary
from img2img_local import resources as r
from img2img_local.cognito import (
    EmulatedOAuth,
    TokenCheck,
    Unauthorized,
    as_authorizer_claims,
    unauthorized_body,
)
from img2img_local.lambda_context import new_context

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

ROUTE_TEMPLATES = tuple(dict.fromkeys(route.path for route in vocabulary.ROUTES))  # the stack's resources
PROXY_RESOURCE = "/{proxy+}"
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_DRAIN_CAP_BYTES = 256 * 1024 * 1024  # past this, stop reading an oversized body and drop the connection


def _template_regex(template: str) -> re.Pattern[str]:
    parts = [f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in template.split("/")]
    return re.compile("/".join(parts) + r"\Z")


_ROUTES = [(t, _template_regex(t)) for t in ROUTE_TEMPLATES]
_METHODS = {(route.method, route.path) for route in vocabulary.ROUTES}
_OPEN = {(route.method, route.path) for route in vocabulary.OPEN_ROUTES}


def needs_token(method: str, path: str) -> bool:
    """api_auth "cognito": a route of the API that is not open (vocabulary.OPEN_ROUTES). Other
    paths reach the handler as before, which answers them 404."""
    route = (method, match_resource(path)[0])
    return route in _METHODS and route not in _OPEN


def match_resource(path: str) -> tuple[str, dict[str, str] | None]:
    """API Gateway's resource for a raw path, and its path parameters (still URL-encoded, as
    the REST API passes them). Unknown paths land on the greedy /{proxy+} resource."""
    for template, pattern in _ROUTES:
        m = pattern.match(path)
        if m:
            return template, (m.groupdict() or None)
    return PROXY_RESOURCE, {"proxy": path.lstrip("/")}


@dataclass(frozen=True)
class GatewayStyle:
    """What differs between the local front and a deployed stage in the event it sends."""

    stage: str = r.API_STAGE
    api_id: str = "local"
    # On the execute-api domain requestContext.path starts with /{stage}; on a custom domain
    # (and locally, where the URL has no stage) it does not.
    stage_in_path: bool = False
    binary_media_types: tuple[str, ...] = r.API_BINARY_MEDIA_TYPES
    forwarded_proto: str = "http"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    raw_path: str  # percent-encoded, as sent
    query_string: str  # raw, without '?'
    headers: list[tuple[str, str]]  # as sent: original case, repeats kept
    body: bytes
    source_ip: str
    server_port: int


def build_proxy_event(
    req: HttpRequest,
    style: GatewayStyle | None = None,
    *,
    request_id: str | None = None,
    claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The REST API Lambda proxy event (payload format 1.0) API Gateway would send for req;
    with `claims` (a verified ID token's), as its Cognito user pools authorizer sends it."""
    style = style or GatewayStyle()
    request_id = request_id or str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    resource, path_params = match_resource(req.raw_path)

    headers = list(req.headers)
    names = {n.lower() for n, _ in headers}
    host = next((v for n, v in headers if n.lower() == "host"), f"127.0.0.1:{req.server_port}")
    forwarded_for = next((v for n, v in headers if n.lower() == "x-forwarded-for"), None)
    headers = [h for h in headers if h[0].lower() != "x-forwarded-for"]
    headers.append(
        ("X-Forwarded-For", f"{forwarded_for}, {req.source_ip}" if forwarded_for else req.source_ip)
    )
    if "x-forwarded-port" not in names:
        headers.append(("X-Forwarded-Port", str(req.server_port)))
    if "x-forwarded-proto" not in names:
        headers.append(("X-Forwarded-Proto", style.forwarded_proto))
    if "x-amzn-trace-id" not in names:
        headers.append(("X-Amzn-Trace-Id", f"Root=1-{now_ms // 1000:08x}-{secrets.token_hex(12)}"))

    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value  # API Gateway keeps the last of repeated headers here
        multi_headers.setdefault(name, []).append(value)

    # Query strings arrive decoded (unlike the path); repeated keys keep their last value.
    pairs = parse_qsl(req.query_string, keep_blank_values=True)
    query = {k: v for k, v in pairs} or None
    multi_query: dict[str, list[str]] = {}
    for k, v in pairs:
        multi_query.setdefault(k, []).append(v)

    content_type = next((v for n, v in headers if n.lower() == "content-type"), "")
    is_binary = _is_binary(content_type, style.binary_media_types)
    if not req.body:
        body: str | None = None
    elif is_binary:
        body = base64.b64encode(req.body).decode("ascii")
    else:
        body = req.body.decode("utf-8", errors="replace")
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), None)
    context_path = f"/{style.stage}{req.raw_path}" if style.stage_in_path else req.raw_path

    return {
        "resource": resource,
        "path": req.raw_path,
        "httpMethod": req.method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourceId": secrets.token_hex(3),
            "resourcePath": resource,
            "httpMethod": req.method,
            "extendedRequestId": secrets.token_urlsafe(12)[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
            "path": context_path,
            "accountId": r.ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": style.stage,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": now_ms,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "cognitoIdentityId": None,
                "sourceIp": req.source_ip,
                "principalOrgId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userAgent": user_agent,
                **(_USER_POOL_IDENTITY if claims is not None else emulated_identity(headers)),
            },
            **({"authorizer": {"claims": as_authorizer_claims(claims)}} if claims is not None else {}),
            "domainName": host,
            "apiId": style.api_id,
        },
        "body": body,
        "isBase64Encoded": bool(body) and is_binary,
    }


# A request a Cognito user pools authorizer let in names no AWS principal and no key.
_USER_POOL_IDENTITY: dict[str, Any] = dict.fromkeys(("accountId", "caller", "accessKey", "userArn", "user"))
_SIGV4_CREDENTIAL = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([A-Z0-9]{16,128})/")


def emulated_identity(headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Who the caller is, as API Gateway's authorizer would name them. EMULATED: local mode
    checks no signature and knows no API keys. An `x-api-key` is taken as a key (its id is
    derived from it), a SigV4 `Authorization` as the IAM user of its access key id, and an
    unsigned request as local mode's one user, who also owns every local S3 drop."""
    found = {name.lower(): value for name, value in headers}
    none = dict.fromkeys(("accountId", "caller", "accessKey", "userArn", "user"))
    if found.get("x-api-key"):
        key = found["x-api-key"]
        key_id = hashlib.sha256(key.encode()).hexdigest()[:10]
        return {**none, "apiKey": key, "apiKeyId": key_id}
    signed = _SIGV4_CREDENTIAL.match(found.get("authorization", ""))
    access_key = signed.group(1) if signed else None
    principal = (
        f"AIDA{hashlib.sha256(access_key.encode()).hexdigest()[:17].upper()}"
        if access_key
        else r.LOCAL_PRINCIPAL_ID
    )
    name = access_key.lower() if access_key else "local"
    return {
        **none,
        "accountId": r.ACCOUNT_ID,
        "caller": principal,
        "accessKey": access_key,
        "userArn": f"arn:aws:iam::{r.ACCOUNT_ID}:user/{name}",
        "user": principal,
    }


def _is_binary(content_type: str, binary_media_types: Iterable[str]) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return bool(mime) and any(fnmatch.fnmatchcase(mime, t.lower()) for t in binary_media_types)


class MalformedProxyResponse(ValueError):
    """API Gateway answers 502 to a Lambda result that is not a proxy response."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def parse_proxy_response(result: Any) -> HttpResponse:
    """Map the handler's proxy response back to HTTP the way API Gateway does."""
    if not isinstance(result, dict):
        raise MalformedProxyResponse(f"the handler returned {type(result).__name__}, not an object")
    status = result.get("statusCode")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode must be an integer HTTP status, got {status!r}")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] must be a list")
        single = {n.lower() for n, _ in headers}
        # Where both maps name a header, API Gateway sends the multi-value list.
        if name.lower() in single:
            headers = [h for h in headers if h[0].lower() != name.lower()]
        headers.extend((str(name), _header_value(v)) for v in values)
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponse(f"body must be a string, got {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise MalformedProxyResponse("isBase64Encoded is true but the body is not base64") from exc
    else:
        data = body.encode("utf-8")
    if not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, headers, data)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResponse(f"header values must be strings, got {type(value).__name__}")


def payload_too_large_body(message: str) -> dict[str, Any]:
    """The service's error shape for a 413 the gateway gives (the infra's REQUEST_TOO_LARGE
    gateway response should render the same)."""
    return {"error": {"code": "payload_too_large", "message": message, "details": []}}


# API Gateway's AUTHORIZER_CONFIGURATION_ERROR (500) in the stack's DEFAULT_5XX error shape.
AUTHORIZER_ERROR_BODY = {
    "error": {"code": "AUTHORIZER_CONFIGURATION_ERROR", "message": "Internal server error", "details": []}
}

TOO_LARGE_MESSAGE = (
    "the request is larger than API Gateway's 10 MB limit: use POST /v1/uploads to put the image "
    "in the input bucket, then send init_image_s3_key instead of init_image"
)
LAMBDA_TOO_LARGE_MESSAGE = (
    "the request is larger than Lambda's 6 MB limit for a synchronous call: use POST /v1/uploads to put "
    "the image in the input bucket, then send init_image_s3_key instead of init_image"
)


class _RequestHandler(WSGIRequestHandler):
    """Keeps the request headers as sent (case, repeats): WSGI folds them together."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ["img2img.raw_headers"] = [(k, v) for k, v in self.headers.items()]
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the front logs one line of its own per request


class ApiFront:
    """The local API Gateway stage. start() binds at once, so a busy port raises OSError."""

    def __init__(
        self,
        handler: Handler,
        host: str = r.DEFAULT_HOST,
        port: int = r.DEFAULT_API_PORT,
        *,
        style: GatewayStyle | None = None,
        integration_timeout_seconds: float = r.API_INTEGRATION_TIMEOUT_SECONDS,
        function_timeout_seconds: float = r.API_TIMEOUT_SECONDS,
        memory_mb: int = r.API_MEMORY_MB,
        function_name: str = r.API_FUNCTION_NAME,
        token_check: TokenCheck | None = None,
        oauth: EmulatedOAuth | None = None,
    ) -> None:
        self._handler = handler
        # api_auth "cognito": the authorizer's checks, and the EMULATED managed login.
        self.token_check = token_check
        self.oauth = oauth
        self._host, self._port = host, port
        self._style = style or GatewayStyle()
        self._integration_timeout = integration_timeout_seconds
        self._function_timeout = function_timeout_seconds
        self._memory_mb = memory_mb
        self._function_name = function_name
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._one_at_a_time = threading.Lock()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> ApiFront:
        self._server = make_server(
            self._host, self._port, self.wsgi_app, threaded=True, request_handler=_RequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        started = time.monotonic()
        response = self._serve(request, environ)
        log.info(
            "%s %s -> %s (%d ms)",
            request.method,
            environ.get("RAW_URI") or request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    def _serve(self, request: Request, environ: dict[str, Any]) -> Response:
        request_id = str(uuid.uuid4())
        body = self._read_body(request)
        if body is None:
            return self._json(413, payload_too_large_body(TOO_LARGE_MESSAGE), request_id, close=True)
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path)
        split = urlsplit(raw)
        if self.oauth is not None and self.oauth.handles(split.path):
            reply = self.oauth.serve(request.method, split.path, split.query, body)
            answer = Response(reply.body, status=reply.status)
            answer.headers.clear()
            for name, value in reply.headers:
                answer.headers.add(name, value)
            return answer
        http_request = HttpRequest(
            method=request.method,
            raw_path=split.path or "/",
            query_string=split.query,
            headers=environ.get("img2img.raw_headers") or list(request.headers.items()),
            body=body,
            source_ip=request.remote_addr or "127.0.0.1",
            server_port=self.port,
        )
        claims = None
        if self.token_check is not None and needs_token(request.method, http_request.raw_path):
            try:
                claims = self.token_check.claims(http_request.headers)
            except Unauthorized as exc:
                log.info("401 for %s %s: %s", request.method, http_request.raw_path, exc)
                return self._json(401, unauthorized_body(), request_id)
            except Exception:  # the pool's keys unreadable: API Gateway's authorizer error
                log.exception("the authorizer failed (request %s)", request_id)
                return self._json(500, AUTHORIZER_ERROR_BODY, request_id)
        event = build_proxy_event(http_request, self._style, request_id=request_id, claims=claims)
        if len(json.dumps(event).encode()) > r.LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES:
            return self._json(413, payload_too_large_body(LAMBDA_TOO_LARGE_MESSAGE), request_id)
        return self._invoke(event, request_id)

    def _read_body(self, request: Request) -> bytes | None:
        """The body, or None when it breaks the 10 MB limit. An oversized body is still read
        (up to a cap) so the client gets the 413 instead of a reset connection."""
        limit = r.API_PAYLOAD_LIMIT_BYTES
        declared = request.content_length
        stream = request.stream
        if declared is not None and declared > limit:
            _drain(stream, min(declared, _DRAIN_CAP_BYTES))
            return None
        data = stream.read(limit + 1)
        if len(data) > limit:
            _drain(stream, _DRAIN_CAP_BYTES)
            return None
        return bytes(data)

    def _invoke(self, event: dict[str, Any], request_id: str) -> Response:
        """Call the handler as API Gateway calls Lambda: a deadline, errors as 502."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            context = new_context(
                self._function_name, timeout_seconds=self._function_timeout, memory_mb=self._memory_mb
            )
            try:
                # One call at a time, like one Lambda instance: the Powertools resolver and
                # logger keep per-request state at module level, which is safe
                # on Lambda (one request per process) and not across threads.
                with self._one_at_a_time:
                    outcome["result"] = self._handler(event, context)
            except Exception as exc:  # a function error: Lambda logs it, API Gateway says 502
                log.exception("the api handler raised (request %s)", request_id)
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"api-{request_id[:8]}", daemon=True)
        worker.start()
        worker.join(self._integration_timeout)
        if worker.is_alive():
            log.error("the api handler ran past the %ss integration timeout", self._integration_timeout)
            return self._json(504, {"message": "Endpoint request timed out"}, request_id)
        if "error" in outcome:
            return self._json(502, {"message": "Internal server error"}, request_id)
        try:
            if len(json.dumps(outcome["result"]).encode()) > r.LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES:
                raise MalformedProxyResponse("the response is larger than Lambda's 6 MB limit")
            mapped = parse_proxy_response(outcome["result"])
        except (MalformedProxyResponse, TypeError, ValueError) as exc:
            log.error("Execution failed due to configuration error: malformed Lambda proxy response: %s", exc)
            return self._json(502, {"message": "Internal server error"}, request_id)
        response = Response(mapped.body, status=mapped.status)
        response.headers.clear()  # Werkzeug recomputes Content-Length; framing is the gateway's
        for name, value in mapped.headers:
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        self._stamp(response, request_id)
        return response

    def _json(self, status: int, body: dict[str, Any], request_id: str, *, close: bool = False) -> Response:
        response = Response(json.dumps(body), status=status, content_type="application/json")
        if close:
            response.headers["Connection"] = "close"
        self._stamp(response, request_id)
        return response

    @staticmethod
    def _stamp(response: Response, request_id: str) -> None:
        response.headers["x-amzn-RequestId"] = request_id


def _drain(stream: Any, limit: int) -> None:
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, 1024 * 1024))
        if not chunk:
            return
        remaining -= len(chunk)
