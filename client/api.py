"""The HTTP client of the img2img API (the routes of functions/img2img/handlers/api.py).

Requests are signed with SigV4 (the caller's AWS credentials, service `execute-api`) when the
API uses IAM auth, or carry `x-api-key` when it uses keys. Transient answers (429, 502, 504,
503 with Retry-After, a dropped connection) are retried a bounded number of times; POSTs that
create something carry an Idempotency-Key, so a retry never makes a second job. Every failure
becomes a ClientError with the exit code it means."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit
from xml.etree import ElementTree

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from img2img.vocabulary import HEALTH, JOB, MODELS, SUBMIT, UPLOAD, job_path
from img2img_client import __version__
from img2img_client.errors import (
    ClientError,
    ConfigurationError,
    RequestRejected,
    ServiceFailed,
    Unreachable,
)

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
USER_AGENT = f"img2img-client/{__version__}"
# Headers worth signing: a proxy may rewrite the others (Accept-Encoding, Connection...).
_SIGNED_HEADERS = {"content-type", "idempotency-key", "x-api-key"}


class CredentialSource(Protocol):
    def get_frozen_credentials(self) -> Any: ...


class SigV4(requests.auth.AuthBase):
    """Signs each request for API Gateway with IAM auth. Credentials are frozen per request,
    so refreshable ones (SSO, assumed roles) stay current."""

    def __init__(self, credentials: CredentialSource, region: str, service: str = "execute-api") -> None:
        self._credentials = credentials
        self.region = region
        self.service = service

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() in _SIGNED_HEADERS}
        body = request.body or b""
        aws_request = AWSRequest(method=request.method, url=request.url, data=body, headers=headers)
        SigV4Auth(self._credentials.get_frozen_credentials(), self.service, self.region).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws_request.headers:
                request.headers[name] = aws_request.headers[name]
        return request


def region_of_execute_api(url: str) -> str | None:
    """`https://abc123.execute-api.us-west-2.amazonaws.com/prod/` -> `us-west-2`."""
    host = urlsplit(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 5 and parts[1] == "execute-api" and parts[3] == "amazonaws":
        return parts[2]
    return None


def _retrying_session() -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=3,
        connect=3,
        read=2,
        status=3,
        backoff_factor=0.5,
        status_forcelist=(429, 502, 504),  # and 503/429 when the answer says Retry-After
        allowed_methods=None,  # POSTs too: the ones that create something are idempotent by key
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class Img2ImgApi:
    """One deployment's (or local mode's) API at `base_url` (ApiUrl, e.g. `.../prod/`)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: requests.auth.AuthBase | None = None,
        api_key: str | None = None,
        timeout: tuple[float, float] = TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._api_key = api_key
        self._timeout = timeout
        self._session = session or _retrying_session()
        self._plain = requests.Session()  # presigned S3 URLs: no auth, no API key
        self._plain.headers["User-Agent"] = USER_AGENT

    # --- routes --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call(*HEALTH)

    def models(self) -> dict[str, Any]:
        return self._call(*MODELS)

    def create_upload(self, content_type: str) -> dict[str, Any]:
        return self._call(*UPLOAD, {"content_type": content_type})

    def submit(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._call(*SUBMIT, dict(body), headers={"Idempotency-Key": idempotency_key})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call(JOB.method, job_path(job_id))

    # --- S3 through presigned URLs ---------------------------------------------------------

    def upload(self, ticket: Mapping[str, Any], data: bytes, filename: str, content_type: str) -> None:
        """A presigned POST from /v1/uploads: the ticket's fields, then `file` last."""
        upload = ticket.get("upload") or {}
        url, fields = upload.get("url"), upload.get("fields") or {}
        if not url:
            raise ServiceFailed("the service answered /v1/uploads without an upload URL")
        try:
            reply = self._plain.post(
                url, data=fields, files={"file": (filename, data, content_type)}, timeout=(10.0, 300.0)
            )
        except requests.RequestException as exc:
            raise Unreachable(f"upload to {_origin(url)} failed: {_reason(exc)}") from exc
        if reply.status_code >= 300:
            code, message = _s3_error(reply)
            error_type = RequestRejected if 400 <= reply.status_code < 500 else ServiceFailed
            raise error_type(f"upload refused ({reply.status_code} {code}): {message}", code=code)

    def fetch(self, url: str) -> bytes:
        """GET a presigned URL (a result image or metadata JSON)."""
        try:
            reply = self._plain.get(url, timeout=(10.0, 300.0))
        except requests.RequestException as exc:
            raise Unreachable(f"download from {_origin(url)} failed: {_reason(exc)}") from exc
        if reply.status_code != 200:
            code, message = _s3_error(reply)
            raise ServiceFailed(f"download failed ({reply.status_code} {code}): {message}")
        return reply.content

    # --- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {"Accept": "application/json", **(headers or {})}
        data: bytes | None = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if self._api_key:
            all_headers["x-api-key"] = self._api_key
        url = self.base_url + path
        try:
            reply = self._session.request(
                method, url, data=data, headers=all_headers, auth=self._auth, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.base_url}: {_reason(exc)}{_local_hint(url)}") from exc
        if reply.status_code >= 400:
            raise self._error(method, path, reply)
        try:
            payload = reply.json() if reply.content else {}
        except ValueError as exc:
            raise ServiceFailed(
                f"{method} {path} answered {reply.status_code} with a body that is not JSON"
            ) from exc
        if not isinstance(payload, dict):
            raise ServiceFailed(
                f"{method} {path} answered {reply.status_code} with JSON that is not an object"
            )
        return payload

    def _error(self, method: str, path: str, reply: requests.Response) -> ClientError:
        status = reply.status_code
        code, message = _api_error(reply)
        where = f"{method} {path}"
        if status in (401, 403):
            hint = (
                "check --api-key / IMG2IMG_API_KEY"
                if self._api_key
                else "the API wants SigV4 (--auth iam) or an API key (--api-key)"
                if self._auth is None
                else "your AWS principal needs execute-api:Invoke on this API"
            )
            return ConfigurationError(
                f"{where}: not authorized ({status}): {message}; {hint}", code=code, problem="access"
            )
        if 400 <= status < 500:
            return RequestRejected(f"{where} rejected ({status} {code}): {message}", code=code)
        return ServiceFailed(f"{where} failed ({status} {code}): {message}", code=code)


def _api_error(reply: requests.Response) -> tuple[str, str]:
    """The service's {"error": {code, message, details}} or the gateway's {"message"}."""
    try:
        payload = reply.json()
    except ValueError:
        text = reply.text.strip().splitlines()
        return f"http_{reply.status_code}", (text[0][:200] if text else reply.reason or "no detail")
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "no detail")
        details = [
            f"{d.get('field')}: {d.get('message')}"
            for d in error.get("details") or []
            if isinstance(d, dict) and d.get("field")
        ]
        if details:
            message += " (" + "; ".join(details) + ")"
        return str(error.get("code") or f"http_{reply.status_code}"), message
    if isinstance(payload, dict) and payload.get("message"):
        return f"http_{reply.status_code}", str(payload["message"])
    return f"http_{reply.status_code}", reply.reason or "no detail"


def _s3_error(reply: requests.Response) -> tuple[str, str]:
    try:
        root = ElementTree.fromstring(reply.content)  # noqa: S314 - S3's own error document
    except ElementTree.ParseError:
        return f"http_{reply.status_code}", reply.reason or "no detail"
    return root.findtext("Code") or f"http_{reply.status_code}", root.findtext("Message") or "no detail"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or dropped"
    return type(exc).__name__


def _local_hint(url: str) -> str:
    host = urlsplit(url).hostname
    return (
        " (is local mode running? `img2img local` or `make local`)"
        if host in ("127.0.0.1", "localhost")
        else ""
    )
