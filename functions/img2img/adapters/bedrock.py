"""The one place that calls Bedrock Runtime InvokeModel, and the one place that retries it.

A model call is billed once it runs, so only answers that say it did not run are retried here,
with jittered exponential backoff: ThrottlingException, ModelNotReadyException,
ServiceUnavailableException, InternalServerException, and a connection that never reached
Bedrock. A read timeout is never retried (the model may be running, and billing): botocore's
own retries are off for this client because its standard mode would retry exactly that.
ModelTimeoutException is retried a bounded number of times (timeout_retries). Every Bedrock
error leaves this module as a domain error a person can act on."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from img2img.domain.errors import (
    InvalidRequest,
    ModelBusy,
    ModelError,
    ModelThrottled,
    ModelTimeout,
    ModelUnavailable,
    ServiceError,
)
from img2img.domain.ports import ModelReply

EMULATOR_HEADER = "x-img2img-emulator"
# Answers that say the model did not run, so nothing was billed: worth another attempt.
NOT_RUN = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "InternalServerException",
    }
)
BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS = 0.5, 8.0


class BedrockInvoker:
    def __init__(
        self,
        client: Any,
        timeout_retries: int = 1,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        client_for_timeout: Callable[[int], Any] | None = None,
    ) -> None:
        self._client = client
        self._client_for_timeout = client_for_timeout  # whole seconds -> a client with that read timeout
        self._timeout_retries = timeout_retries
        self._attempts = attempts  # calls in all, for answers that say the model did not run
        self._sleep = sleep
        self._jitter = jitter

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    def invoke(self, model_id: str, body: dict[str, Any], *, timeout: float | None = None) -> ModelReply:
        """One model call, retried only for answers that say the model did not run (and a
        bounded number of ModelTimeoutExceptions in the worker). With `timeout` (seconds, the
        invocation's deadline less its reserve) every attempt, retries and waits included, ends
        within it: a retry that could not finish in time is not started."""
        payload = request_json(body)
        ends_at = None if timeout is None else time.monotonic() + timeout
        attempts = timeouts = 0
        while True:
            attempts += 1
            try:
                response = self._client_until(ends_at).invoke_model(
                    modelId=model_id, body=payload, contentType="application/json", accept="application/json"
                )
                return ModelReply(_read_json(response), _is_emulated(response), attempts)
            except ClientError as exc:
                error = self._translate(exc, model_id)
                if (
                    isinstance(error, ModelTimeout)
                    and timeouts < self._timeout_retries
                    and _left(ends_at) >= 1
                ):
                    timeouts += 1
                    continue
                code = exc.response.get("Error", {}).get("Code")
                if code in NOT_RUN and attempts < self._attempts and self._back_off(attempts, ends_at):
                    continue
                raise error from exc
            except ReadTimeoutError as exc:
                unheard = ModelTimeout(f"model {model_id} did not answer within the client's read timeout")
                unheard.may_have_billed = True  # it may have run to the end, unheard
                raise unheard from exc
            except (ConnectTimeoutError, EndpointConnectionError) as exc:  # never reached Bedrock
                if attempts < self._attempts and self._back_off(attempts, ends_at):
                    continue
                raise ModelBusy(f"could not reach Bedrock for model {model_id}", internal=str(exc)) from exc
            except BotoCoreError as exc:  # a connection fault mid-call: the model may have run
                cut = ModelBusy(f"the call to model {model_id} was cut off", internal=str(exc))
                cut.may_have_billed = True  # it may have run (and billed): never called again for free
                raise cut from exc

    def _client_until(self, ends_at: float | None) -> Any:
        """botocore fixes a read timeout per client: a call with a deadline uses a client made
        for the whole seconds left (made once per value, then reused)."""
        if ends_at is None or self._client_for_timeout is None:
            return self._client
        return self._client_for_timeout(max(1, int(_left(ends_at))))

    def _back_off(self, attempts: int, ends_at: float | None) -> bool:
        """Full jitter: a random wait up to an exponentially growing cap. False, without
        waiting, when the wait would leave less than a second for the next attempt."""
        wait = self._jitter() * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
        if _left(ends_at) - wait < 1:
            return False
        self._sleep(wait)
        return True

    def _translate(self, exc: ClientError, model_id: str) -> ServiceError:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        region = self.region
        if code == "ResourceNotFoundException":
            return ModelUnavailable(
                f"model {model_id} is not available in region {region} ({message}). It may have reached "
                "end of life or need a cross-region inference profile id (us./eu. prefix): choose a live "
                "model and set allowed_model_ids / default_model_id for this environment in cdk.json."
            )
        if code == "AccessDeniedException":
            # Bedrock's text can name the role and resource ARNs: the logs get it, callers do not.
            # Today's causes (docs.aws.amazon.com/bedrock/latest/userguide/model-access.html and
            # model-lifecycle-legacy.html): the Marketplace subscription a first call starts was never
            # completed, or a LEGACY model is withheld from accounts that have not used it lately.
            return ModelUnavailable(
                f"access to model {model_id} in region {region} is denied. If its Marketplace "
                "subscription is not complete, an operator runs make enable-models ENV=<environment>; "
                "if the model is LEGACY (img2img doctor says), choose an ACTIVE model in cdk.json.",
                internal=message,
            )
        if code == "ThrottlingException":
            return ModelThrottled(f"Bedrock throttled model {model_id}: {message}")
        if code == "ServiceQuotaExceededException":
            return ModelThrottled(f"the Bedrock quota for model {model_id} is exhausted: {message}")
        if code == "ModelTimeoutException":
            return ModelTimeout(f"model {model_id} timed out: {message}")
        if code in ("ModelNotReadyException", "InternalServerException", "ServiceUnavailableException"):
            return ModelBusy(f"Bedrock could not serve model {model_id} now ({code})", internal=message)
        if code == "ValidationException":
            return InvalidRequest(f"model {model_id} rejected the request: {message}")
        return ModelError(f"model {model_id} failed ({code or 'unknown error'})", internal=message)


def _left(ends_at: float | None) -> float:
    return float("inf") if ends_at is None else ends_at - time.monotonic()


_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_LONG = 1 << 16  # characters: only strings this long are worth checking (the image)


def request_json(body: dict[str, Any]) -> bytes:
    """json.dumps(body).encode(), byte for byte, with every long base64 string (the source image,
    megabytes of it) copied in as it is: no base64 character needs escaping, and json's
    escaping scan of such a string costs several times the check that it is base64."""
    pieces: list[bytes] = []
    for key, value in body.items():
        pieces.append(b", " if pieces else b"{")
        raw = (
            value.encode("ascii")
            if isinstance(key, str) and isinstance(value, str) and len(value) >= _LONG and value.isascii()
            else b""
        )
        if raw and not raw.translate(None, _BASE64):
            pieces += (json.dumps(key).encode(), b': "', raw, b'"')
        else:
            pieces.append(json.dumps({key: value}).encode()[1:-1])
    pieces.append(b"}" if pieces else b"{}")
    return b"".join(pieces)


def _read_json(response: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(response["body"].read())
    except ValueError as exc:
        raise ModelError("the model answered with a body that is not JSON") from exc
    if not isinstance(payload, dict):
        raise ModelError("the model answered with JSON that is not an object")
    return payload


def _is_emulated(response: dict[str, Any]) -> bool:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return str(headers.get(EMULATOR_HEADER, "")).lower() == "true"
