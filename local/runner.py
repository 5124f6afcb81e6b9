"""Starts and stops the whole of local mode in this process: the Bedrock emulator, moto with
the service's resources, the environment the functions read, the API front and the worker
poller. `python -m img2img_local`, the demo and the tests all go through start_local()."""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from img2img_local import resources as r
from img2img_local.api_front import ApiFront
from img2img_local.aws import LocalResources, MotoServer, aws_client, create_resources, reset_moto, start_moto
from img2img_local.cognito import EmulatedOAuth, LocalSignIn, TokenCheck, create_sign_in
from img2img_local.poller import SqsPoller

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
API_HANDLER = "img2img.handlers.api.handler"
WORKER_HANDLER = "img2img.handlers.worker.handler"
Function = Literal["api", "worker"]
FUNCTIONS: tuple[Function, ...] = ("api", "worker")
ApiAuth = Literal["iam", "cognito"]


def function_environment(
    function: Function,
    aws_port: int,
    bedrock_port: int,
    host: str = r.DEFAULT_HOST,
    *,
    max_receive_count: int = r.QUEUE_MAX_RECEIVE_COUNT,
) -> dict[str, str]:
    """The environment local mode gives one function ("api" or "worker"): every variable the
    CDK stack gives it (infra/functions.py), with local names and values, and the endpoints
    boto3 reads by itself. What differs from AWS, and why, is listed in
    tests/infra/test_local_parity.py."""
    aws_url = f"http://{host}:{aws_port}"
    return {
        "IMG2IMG_ENV": "local",
        "IMG2IMG_INPUT_BUCKET": r.INPUT_BUCKET,
        "IMG2IMG_OUTPUT_BUCKET": r.OUTPUT_BUCKET,
        "IMG2IMG_JOBS_TABLE": r.JOBS_TABLE,
        "IMG2IMG_EVENT_BUS_NAME": r.EVENT_BUS,
        "IMG2IMG_QUEUE_URL": f"{aws_url}/{r.ACCOUNT_ID}/{r.JOBS_QUEUE}",
        "IMG2IMG_ALLOWED_MODEL_IDS": ",".join(r.ALLOWED_MODEL_IDS),
        "IMG2IMG_DEFAULT_MODEL_ID": r.DEFAULT_MODEL_ID,
        "IMG2IMG_FALLBACK_MODEL_IDS": ",".join(r.FALLBACK_MODEL_IDS),
        "IMG2IMG_MAX_RECEIVE_COUNT": str(max_receive_count),  # the worker's "last attempt" test
        "IMG2IMG_JOB_TTL_DAYS": str(r.JOB_TTL_DAYS),
        "IMG2IMG_PRESIGN_EXPIRY_SECONDS": str(r.PRESIGN_EXPIRY_SECONDS),
        "IMG2IMG_MODEL_READ_TIMEOUT_SECONDS": str(r.MODEL_READ_TIMEOUT_SECONDS[function]),
        # Local mode's default front names callers as SigV4 would (api_front.emulated_identity).
        "IMG2IMG_API_AUTH": "iam",
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"http://{host}:{bedrock_port}",
        # GetFoundationModel (the lifecycle watch, img2img doctor) is answered by the emulator too.
        "AWS_ENDPOINT_URL_BEDROCK": f"http://{host}:{bedrock_port}",
        # A developer's shell may say otherwise; local mode must never reach AWS.
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": r.REGION,
        "AWS_REGION": r.REGION,  # Lambda sets both
        "POWERTOOLS_SERVICE_NAME": r.SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": r.METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": r.LOG_LEVEL,
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
    }


def local_environment(
    aws_port: int,
    bedrock_port: int,
    host: str = r.DEFAULT_HOST,
    *,
    max_receive_count: int = r.QUEUE_MAX_RECEIVE_COUNT,
) -> dict[str, str]:
    """The environment of local mode's process, where both functions run and read their
    settings once: the worker's. The two differ only in the model read timeout, and the api's
    sync route ends each model call at its invocation's own deadline (less the reserve), so the
    api's own value bounds no call there, while the worker's bounds every call it makes. Extra
    worker processes (img2img_local.workers) get this environment too."""
    return function_environment("worker", aws_port, bedrock_port, host, max_receive_count=max_receive_count)


class PortInUseError(RuntimeError):
    pass


def check_ports_free(host: str, ports: list[tuple[str, int, str]]) -> None:
    """Fail at once, naming each busy port and the variable that moves it. Port 0 is free."""
    busy = []
    for what, port, env_var in ports:
        if port and not port_is_free(host, port):
            busy.append(f"port {port} ({what}) is already in use on {host}: set {env_var} to another port")
    if busy:
        raise PortInUseError("\n  ".join(["", *busy]) + "\nIs local mode already running (make local)?")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a socket in TIME_WAIT does not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def sign_in_environment(sign_in: LocalSignIn) -> dict[str, str]:
    """api_auth "cognito": what the stack gives the api function (infra/auth.py), locally."""
    return {
        "IMG2IMG_API_AUTH": "cognito",
        "IMG2IMG_AUTH_BASE_URL": sign_in.base_url,
        "IMG2IMG_AUTH_CLIENT_ID": sign_in.client_id,
        "IMG2IMG_AUTH_REDIRECT_URI": sign_in.redirect_uri,
    }


def api_auth_from_environment() -> ApiAuth:
    """`IMG2IMG_LOCAL_API_AUTH=cognito make local`: the page signs in (local/cognito.py)."""
    value = os.environ.get(r.API_AUTH_ENV, "iam").strip().lower() or "iam"
    if value not in r.API_AUTH_MODES:
        raise ValueError(f"{r.API_AUTH_ENV} must be one of {', '.join(r.API_AUTH_MODES)}, not {value!r}")
    return "cognito" if value == "cognito" else "iam"


def ports_from_environment() -> dict[str, int]:
    """The ports `python -m img2img_local` and the demo use, each overridable."""
    return {
        "api_port": int(os.environ.get(r.API_PORT_ENV, r.DEFAULT_API_PORT)),
        "aws_port": int(os.environ.get(r.AWS_PORT_ENV, r.DEFAULT_AWS_PORT)),
        "bedrock_port": int(os.environ.get(r.BEDROCK_PORT_ENV, r.DEFAULT_BEDROCK_PORT)),
    }


def import_handler(path: str) -> Handler:
    module, _, attr = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), attr)
    return handler


@dataclass
class LocalStack:
    """A running local mode. Use as a context manager, or call stop()."""

    api_url: str
    aws_url: str
    bedrock_url: str | None
    env: dict[str, str]
    resources: LocalResources
    api: ApiFront
    poller: SqsPoller
    moto: MotoServer
    emulator: Any = None
    sign_in: LocalSignIn | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def client(self, service: str) -> Any:
        return aws_client(service, self.aws_url)

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        """Wait for GET /v1/health to answer 200 and return its body."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(f"{self.api_url}/v1/health", timeout=5) as reply:
                    body: dict[str, Any] = json.loads(reply.read() or b"{}")
                    return body
            except urllib.error.HTTPError as exc:
                last = f"{exc.code} {exc.read()[:300]!r}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"GET {self.api_url}/v1/health did not answer 200: {last}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        _stop_quietly(self.api.stop, self.poller.stop, self.moto.stop)
        if self.emulator is not None:
            _stop_quietly(self.emulator.stop)
        _restore_env(self._saved_env)
        _forget_function_state()
        reset_moto()
        _release()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


_LOCK = threading.Lock()
_ACTIVE = False


def _claim() -> None:
    global _ACTIVE
    with _LOCK:
        if _ACTIVE:
            raise RuntimeError(
                "a local stack is already running in this process (moto's state is per process)"
            )
        _ACTIVE = True


def _release() -> None:
    global _ACTIVE
    with _LOCK:
        _ACTIVE = False


def start_local(
    *,
    host: str = r.DEFAULT_HOST,
    api_port: int = r.DEFAULT_API_PORT,
    aws_port: int = r.DEFAULT_AWS_PORT,
    bedrock_port: int = r.DEFAULT_BEDROCK_PORT,
    api_handler: Handler | None = None,
    worker_handler: Handler | None = None,
    with_bedrock: bool = True,
    bedrock_faults: dict[str, Any] | None = None,
    queue_settings: r.QueueSettings | None = None,
    batch_size: int = r.WORKER_BATCH_SIZE,
    poll_wait_seconds: int = 1,
    integration_timeout_seconds: float = r.API_INTEGRATION_TIMEOUT_SECONDS,
    model_reserve_seconds: float | None = None,
    api_auth: ApiAuth = "iam",
) -> LocalStack:
    """Start local mode; port 0 picks a free port. Handlers default to the real ones, imported
    after the environment is set (their settings and clients are read at cold start). With
    api_auth "cognito", a user pool in moto, tokens checked by the front, and the EMULATED
    managed login (local/cognito.py). `model_reserve_seconds` is for tests whose short
    visibility timeout makes the worker's function timeout (never above it, as Lambda
    requires) shorter than the 3 s reserve."""
    check_ports_free(
        host,
        [
            ("local API", api_port, r.API_PORT_ENV),
            ("AWS emulation", aws_port, r.AWS_PORT_ENV),
            ("Bedrock emulator", bedrock_port if with_bedrock else 0, r.BEDROCK_PORT_ENV),
        ],
    )
    _claim()
    started: list[Callable[[], None]] = []
    saved_env: dict[str, str | None] = {}
    try:
        emulator = None
        if with_bedrock:
            from img2img_local.bedrock_emulator import start_emulator

            emulator = _bind(
                "Bedrock emulator",
                bedrock_port,
                r.BEDROCK_PORT_ENV,
                host,
                start_emulator,
                **(bedrock_faults or {}),
            )
            started.append(emulator.stop)
            bedrock_port = int(emulator.port)
        moto = _bind("AWS emulation", aws_port, r.AWS_PORT_ENV, host, start_moto)
        started.append(moto.stop)
        aws_url = moto.url
        resources = create_resources(aws_url, queue_settings)

        env = local_environment(
            moto.get_host_and_port()[1],
            bedrock_port,
            host,
            max_receive_count=(queue_settings or r.QueueSettings()).max_receive_count,
        )
        if model_reserve_seconds is not None:
            env["IMG2IMG_MODEL_RESERVE_SECONDS"] = str(model_reserve_seconds)
        if env["IMG2IMG_QUEUE_URL"] != resources.queue_url:
            raise RuntimeError(f"queue URL {resources.queue_url} differs from {env['IMG2IMG_QUEUE_URL']}")
        # The front binds first: with api_auth "cognito" its address is the page's redirect URI,
        # which the app client and the api function's settings name. It answers nothing
        # before the handler is in place (start_local returns after).
        served: dict[str, Handler] = {}
        front = ApiFront(
            lambda event, context: served["api"](event, context),
            host,
            api_port,
            integration_timeout_seconds=integration_timeout_seconds,
        )
        _bind("local API", api_port, r.API_PORT_ENV, host, lambda h, p: front.start())
        started.append(front.stop)
        sign_in = None
        if api_auth == "cognito":
            sign_in = create_sign_in(aws_url, f"{front.url}/")
            env.update(sign_in_environment(sign_in))
            front.token_check = TokenCheck(sign_in)
            front.oauth = EmulatedOAuth(sign_in, aws_url)
        saved_env = _apply_env(env)
        _forget_function_state()
        served["api"] = api_handler or import_handler(API_HANDLER)
        worker_handler = worker_handler or import_handler(WORKER_HANDLER)

        poller = SqsPoller(
            worker_handler,
            sqs_client=aws_client("sqs", aws_url),
            queue_url=resources.queue_url,
            queue_arn=resources.queue_arn,
            batch_size=batch_size,
            wait_seconds=poll_wait_seconds,
            timeout_seconds=min(r.WORKER_TIMEOUT_SECONDS, _visibility(queue_settings)),
        ).start()
        started.append(poller.stop)
    except BaseException:
        _stop_quietly(*reversed(started))
        _restore_env(saved_env)
        reset_moto()
        _release()
        raise
    return LocalStack(
        api_url=front.url,
        aws_url=aws_url,
        bedrock_url=str(emulator.url) if emulator is not None else None,
        env=env,
        resources=resources,
        api=front,
        poller=poller,
        moto=moto,
        emulator=emulator,
        sign_in=sign_in,
        _saved_env=saved_env,
    )


def _visibility(settings: r.QueueSettings | None) -> int:
    # Lambda requires visibility timeout >= function timeout; shortened queues shorten it too.
    return (settings or r.QueueSettings()).visibility_timeout_seconds


def _bind(what: str, port: int, env_var: str, host: str, start: Callable[..., Any], **kwargs: Any) -> Any:
    """Start one server, turning 'address in use' (lost a race since the check) into the
    same clear error."""
    try:
        return start(host, port, **kwargs)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} ({what}) is already in use on {host}: set {env_var} to another port"
            ) from exc
        raise


def _forget_function_state() -> None:
    """The functions build settings and clients once per process (a cold start); a stack with
    other ports or settings needs a fresh cold start. Only if they were loaded at all."""
    wiring = sys.modules.get("img2img.handlers.wiring")
    reset = getattr(wiring, "reset", None)
    if callable(reset):
        reset()


def _apply_env(env: dict[str, str]) -> dict[str, str | None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _stop_quietly(*stops: Callable[[], None]) -> None:
    for stop in stops:
        try:
            stop()
        except Exception:
            log.exception("while stopping local mode")
