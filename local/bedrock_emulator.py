"""A Bedrock Runtime InvokeModel emulator for local mode. It is a stand-in, NOT a diffusion
model: it checks each body by its model family's rules and answers with a deterministic
blend of the source image and a seeded pattern (see emulated_image). Every response carries
`x-img2img-emulator: true` so the service can mark its results as emulated.

The real boto3 `bedrock-runtime` client works against it with only `endpoint_url` changed:
`POST /model/{modelId}/invoke`, JSON in and out, errors as AWS sends them (status code,
`x-amzn-ErrorType` header, `{"message": ...}` body) so botocore raises its modelled exceptions.

Faults, set at construction, from `IMG2IMG_EMULATOR_*` variables or at run time with
`POST /_emulator/faults` (same names, lower case, without the prefix):

    LATENCY_MS         milliseconds added to every invocation
    THROTTLE_FIRST     the next N attempts answer ThrottlingException (429)
    UNAVAILABLE_FIRST  the next N attempts answer ServiceUnavailableException (503)
    TIMEOUT_FIRST      the next N invocations answer ModelTimeoutException (408)
    FAIL_FIRST         the next N invocations answer InternalServerException (500)
    MODEL_ERROR_FIRST  the next N invocations answer ModelErrorException (424)
    FILTER_WORD        a prompt containing it is content-filtered, in the family's own way
    RETIRED_MODELS     comma list: ResourceNotFoundException, end of life (on top of the
                       models Bedrock really retired, which always answer so)
    DENIED_MODELS      comma list: AccessDeniedException
    LEGACY_MODELS      comma list: GetFoundationModel reports them LEGACY (they still answer)

A counter is spent each time its fault fires. Throttling and unavailability hit attempts
before the body is read (as at AWS's front door); the other counted faults hit invocations,
after validation. `POST /_emulator/reset` clears counters and faults.

`GET /_emulator/stats` counts, since start or reset:

    attempts     every POST /model/{id}/invoke, whatever became of it
    rejected     answered with a client error before any model ran: unknown, retired or
                 denied model, unreadable or invalid body (ValidationException)
    refused      answered ThrottlingException or ServiceUnavailableException
    invocations  passed validation and reached the model: success, content filtered,
                 ModelTimeoutException, InternalServerException or ModelErrorException
    by_model     invocations per model id as the caller sent it
    outcomes     invocations by how they ended

so attempts == rejected + refused + invocations, and a request the service should never
have sent (bad input, a duplicate) is visible as an unchanged `invocations`.

It also answers the control plane's GetFoundationModel (`GET /foundation-models/{id}`, the
`bedrock` client with AWS_ENDPOINT_URL_BEDROCK pointing here), which the lifecycle watch and
`img2img doctor` read: ACTIVE for a served model, LEGACY for LEGACY_MODELS, and
ResourceNotFoundException for a retired or unknown one.

Run standalone: `python -m img2img_local.bedrock_emulator --port 4567`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from img2img_local.emulated_checks import BodyError
from img2img_local.emulated_models import END_OF_LIFE_MODELS, MODELS, PROFILE_ONLY, run, split_profile
from img2img_local.emulator_faults import FRONT_FAULTS, MODEL_FAULTS, CountedFault, EmulatorFaults

log = logging.getLogger("img2img_local.bedrock_emulator")

EMULATOR_HEADER = "x-img2img-emulator"
MAX_BODY_BYTES = 25_000_000  # InvokeModel's request body limit
STAND_IN = "Bedrock emulator: a stand-in, NOT a diffusion model"

END_OF_LIFE = (
    "This model version has reached the end of its life. "
    "Please refer to the AWS documentation for more details."
)
ACCESS_DENIED = "You don't have access to the model with the specified model ID."
ON_DEMAND_NOT_SUPPORTED = (
    "Invocation of model ID {model_id} with on-demand throughput isn't supported. Retry your request "
    "with the ID or ARN of an inference profile that contains this model."
)


@dataclass
class _Stats:
    attempts: int = 0
    rejected: int = 0
    refused: int = 0
    invocations: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "emulator": STAND_IN,
            "attempts": self.attempts,
            "rejected": self.rejected,
            "refused": self.refused,
            "invocations": self.invocations,
            "by_model": dict(self.by_model),
            "outcomes": dict(self.outcomes),
        }


class _AwsError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class BedrockEmulator:
    """The emulator's state (faults, counters) and its WSGI application."""

    def __init__(self, faults: EmulatorFaults | None = None, seed_rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = seed_rng or random.Random()  # noqa: S311 - picks image seeds, not secrets
        self._faults = faults or EmulatorFaults()
        self._remaining = self._counters(self._faults)
        self._stats = _Stats()
        self._urls = Map(
            [
                Rule("/model/<path:model_id>/invoke", endpoint="invoke", methods=["POST"]),
                Rule("/foundation-models/<path:model_id>", endpoint="foundation_model", methods=["GET"]),
                Rule("/_emulator/stats", endpoint="stats", methods=["GET"]),
                Rule("/_emulator/faults", endpoint="faults", methods=["GET", "POST"]),
                Rule("/_emulator/reset", endpoint="reset", methods=["POST"]),
                Rule("/_emulator/models", endpoint="models", methods=["GET"]),
            ]
        )

    @property
    def faults(self) -> EmulatorFaults:
        return self._faults

    def set_faults(self, **settings: Any) -> EmulatorFaults:
        with self._lock:
            self._faults = self._faults.updated(settings)
            for name in settings:
                if name in self._remaining:
                    self._remaining[name] = getattr(self._faults, name)
            return self._faults

    def reset(self) -> None:
        with self._lock:
            self._faults = EmulatorFaults()
            self._remaining = self._counters(self._faults)
            self._stats = _Stats()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.to_dict()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self._urls.bind_to_environ(environ).match()
            response = getattr(self, f"_on_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = _json({"message": exc.description or exc.name}, exc.code or 500)
        response.headers[EMULATOR_HEADER] = "true"
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response(environ, start_response)

    # --- InvokeModel -------------------------------------------------------------------

    def _on_invoke(self, request: Request, model_id: str) -> Response:
        started = time.perf_counter()
        with self._lock:
            self._stats.attempts += 1
        # Read the body whatever the answer, so an unread body cannot linger on a kept-alive connection.
        oversized = (request.content_length or 0) > MAX_BODY_BYTES
        raw = None if oversized else request.get_data()
        try:
            response = self._invoke(request, model_id, raw)
        except _AwsError as exc:
            log.info("%s: %s -> %s %s: %s", STAND_IN, model_id, exc.status, exc.error, exc.message)
            response = _json({"message": exc.message}, exc.status)
            response.headers["x-amzn-ErrorType"] = exc.error
            if oversized:
                response.headers["Connection"] = "close"
            return response
        elapsed = round((time.perf_counter() - started) * 1000)
        response.headers["X-Amzn-Bedrock-Invocation-Latency"] = str(elapsed)
        return response

    def _invoke(self, request: Request, model_id: str, raw: bytes | None) -> Response:
        profile, base = split_profile(model_id)
        model = MODELS.get(base)
        faults = self._faults
        if base in END_OF_LIFE_MODELS or {model_id, base} & faults.retired_models:
            self._count("rejected")
            raise _AwsError(404, "ResourceNotFoundException", END_OF_LIFE)
        if model is None:
            self._count("rejected")
            raise _AwsError(404, "ResourceNotFoundException", f"Model {model_id} not found. {_served()}")
        if {model_id, base} & faults.denied_models:
            self._count("rejected")
            raise _AwsError(403, "AccessDeniedException", ACCESS_DENIED)
        if base in PROFILE_ONLY and profile is None:
            self._count("rejected")
            raise _AwsError(400, "ValidationException", ON_DEMAND_NOT_SUPPORTED.format(model_id=model_id))
        self._raise_counted(FRONT_FAULTS, "refused")
        try:
            job = model.parse(_read_json(request, raw))
        except BodyError as exc:
            self._count("rejected")
            raise _AwsError(400, "ValidationException", str(exc)) from exc
        with self._lock:
            self._stats.invocations += 1
            self._stats.by_model[model_id] += 1
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        self._raise_counted(MODEL_FAULTS, None)
        payload, filtered = run(model, job, self._rng, faults.filter_word, base)
        self._outcome("content_filtered" if filtered else "success")
        log.info(
            "%s: %s (%s) -> 200 %s", STAND_IN, model_id, model.family, "filtered" if filtered else "image"
        )
        return _json(payload, 200)

    def _raise_counted(self, candidates: tuple[CountedFault, ...], stat: str | None) -> None:
        with self._lock:
            for fault in candidates:
                if self._remaining[fault.counter] > 0:
                    self._remaining[fault.counter] -= 1
                    if stat:
                        setattr(self._stats, stat, getattr(self._stats, stat) + 1)
                    else:
                        self._stats.outcomes[fault.error] += 1
                    raise _AwsError(fault.status, fault.error, fault.message)

    def _count(self, stat: str) -> None:
        with self._lock:
            setattr(self._stats, stat, getattr(self._stats, stat) + 1)

    def _outcome(self, name: str) -> None:
        with self._lock:
            self._stats.outcomes[name] += 1

    @staticmethod
    def _counters(faults: EmulatorFaults) -> dict[str, int]:
        return {fault.counter: getattr(faults, fault.counter) for fault in FRONT_FAULTS + MODEL_FAULTS}

    # --- control endpoints -------------------------------------------------------------

    def _on_stats(self, request: Request) -> Response:
        return _json(self.stats(), 200)

    def _on_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                settings = json.loads(request.get_data() or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("the body must be a JSON object of fault settings")
                self.set_faults(**settings)
            except ValueError as exc:
                return _json({"message": str(exc)}, 400)
        return _json(self.faults.to_dict(), 200)

    def _on_reset(self, request: Request) -> Response:
        self.reset()
        return _json({"reset": True}, 200)

    def _on_foundation_model(self, request: Request, model_id: str) -> Response:
        """GetFoundationModel: takes a base model id (or its ARN), not an inference profile id."""
        profile, base = split_profile(model_id)
        model = MODELS.get(base)
        faults = self._faults
        if (
            profile is not None
            or model is None
            or base in END_OF_LIFE_MODELS
            or base in faults.retired_models
        ):
            return _aws_error(
                404,
                "ResourceNotFoundException",
                f"Could not resolve the foundation model from the provided model identifier: {model_id}",
            )
        if base in faults.denied_models:
            return _aws_error(403, "AccessDeniedException", ACCESS_DENIED)
        lifecycle: dict[str, Any] = {"status": "LEGACY" if base in faults.legacy_models else "ACTIVE"}
        return _json(
            {
                "modelDetails": {
                    "modelArn": f"arn:aws:bedrock:{_region(request)}::foundation-model/{base}",
                    "modelId": base,
                    "modelName": model.family,
                    "providerName": "Stability AI",
                    "inputModalities": ["TEXT", "IMAGE"],
                    "outputModalities": ["IMAGE"],
                    "responseStreamingSupported": False,
                    "inferenceTypesSupported": ["INFERENCE_PROFILE"]
                    if base in PROFILE_ONLY
                    else ["ON_DEMAND"],
                    "modelLifecycle": lifecycle,
                }
            },
            200,
        )

    def _on_models(self, request: Request) -> Response:
        return _json({"models": {model_id: model.family for model_id, model in MODELS.items()}}, 200)


def _read_json(request: Request, raw: bytes | None) -> Any:
    if raw is None:
        raise BodyError("", f"the body is larger than {MAX_BODY_BYTES} bytes")
    content_type = request.mimetype or "application/json"
    if content_type != "application/json":
        raise BodyError("", f"contentType {content_type} is not supported; use application/json")
    accept = request.headers.get("Accept", "application/json")
    if accept not in ("application/json", "*/*"):
        raise BodyError("", f"accept {accept} is not supported; use application/json")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BodyError("", "the body is not valid JSON") from exc


def _aws_error(status: int, error: str, message: str) -> Response:
    response = _json({"message": message}, status)
    response.headers["x-amzn-ErrorType"] = error
    return response


def _region(request: Request) -> str:
    """The region the client signed for (SigV4's credential scope), as AWS answers per region."""
    authorization = request.headers.get("Authorization", "")
    parts = authorization.split("Credential=", 1)[-1].split("/")
    return parts[2] if len(parts) > 3 else "us-east-1"


def _served() -> str:
    return (
        "The emulator serves: "
        + ", ".join(MODELS)
        + " (optionally with an inference profile prefix such as us.)."
    )


def _json(payload: Any, status: int) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


# --- running it ----------------------------------------------------------------------------


@dataclass
class EmulatorHandle:
    emulator: BedrockEmulator
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    host: str = "127.0.0.1", port: int = 0, *, environ: Mapping[str, str] | None = None, **faults: Any
) -> EmulatorHandle:
    """Serve a new emulator in a background thread. Faults: the `IMG2IMG_EMULATOR_*` variables
    of `environ` (default: the process environment), overridden by keyword arguments."""
    settings = EmulatorFaults.from_env(os.environ if environ is None else environ).updated(faults)
    emulator = BedrockEmulator(settings)
    server = make_server(host, port, emulator, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="bedrock-emulator", daemon=True)
    thread.start()
    handle = EmulatorHandle(emulator, server, thread)
    log.debug("%s, listening on %s (models: %s)", STAND_IN, handle.url, ", ".join(MODELS))
    return handle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=STAND_IN + ", speaking InvokeModel over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4567)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    handle = start_emulator(args.host, args.port)
    print(f"{STAND_IN} at {handle.url} (Ctrl-C stops it)", flush=True)
    try:
        handle.thread.join()
    except KeyboardInterrupt:
        handle.stop()


if __name__ == "__main__":
    main()
