"""Domain errors. Each carries a stable code, the HTTP status the API door answers with,
whether a retry can succeed, and the fields it is about. Handlers map these, and only these,
to responses (see handlers/http_errors.py); the S3 door writes `code` into the metadata JSON."""

from __future__ import annotations

from dataclasses import dataclass


def excerpt(value: object, limit: int = 40) -> str:
    """A value as an error message may quote it: repr'd and cut short, so that no error ever
    echoes a request body or a long value back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ServiceError(Exception):
    code = "internal_error"
    status = 500
    retryable = False

    def __init__(
        self, message: str, details: list[FieldError] | None = None, *, internal: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message  # what callers read (responses, metadata JSON): no bucket names or ARNs
        self.details = list(details or [])
        self.internal = internal  # what only the logs get: the SDK's own text, resource names
        self.job_id: str | None = None  # set when a job was recorded before the failure
        # A model call that failed so may still have run (and billed): a read timeout.
        self.may_have_billed = False

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "details": [d.to_dict() for d in self.details],
        }


class InvalidRequest(ServiceError):
    """The request body or parameters break a rule of the contract."""

    code = "invalid_request"
    status = 400


class SourceNotFound(ServiceError):
    """`init_image_s3_key` names an object that is not in the input bucket."""

    code = "source_not_found"
    status = 400


class UnsupportedImage(ServiceError):
    """The source is not a still PNG, JPEG or WebP image, or it is corrupt."""

    code = "unsupported_image"
    status = 415


class ImageTooLarge(ServiceError):
    """The source breaks the byte or pixel cap (also guards against decompression bombs)."""

    code = "image_too_large"
    status = 413


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status = 413


class JobNotFound(ServiceError):
    code = "job_not_found"
    status = 404


class ModelThrottled(ServiceError):
    code = "model_throttled"
    status = 429
    retryable = True


class ModelTimeout(ServiceError):
    code = "model_timeout"
    status = 504
    retryable = True


class ModelUnavailable(ServiceError):
    """End of life, no access, wrong region or id: a person must change configuration."""

    code = "model_unavailable"
    status = 503


class ModelBusy(ServiceError):
    """Bedrock answered 5xx or 'not ready' after the client's own retries: worth retrying later."""

    code = "model_busy"
    status = 503
    retryable = True


class ModelError(ServiceError):
    """The model failed on this input (ModelErrorException, a rejected body, a bad response)."""

    code = "model_error"
    status = 502


class StorageError(ServiceError):
    code = "storage_error"
    status = 500
    retryable = True


class AnswerLost(StorageError):
    """Two attempts at this job may have reached the model (stopped mid-way, or their answer
    lost before it was stored) and neither left an answer: it is not called a third time."""

    retryable = False


class IdempotencyConflict(ServiceError):
    """The same Idempotency-Key came with a different request, or its first use is still running."""

    code = "idempotency_conflict"
    status = 409


class InProgress(IdempotencyConflict):
    """Another attempt holds the job (its lease has not run out): retry later."""

    retryable = True


class MissingParameters(ServiceError):
    """An image reached the S3 door with neither a manifest nor a prompt in its metadata."""

    code = "missing_parameters"
    status = 400


class NoCallerIdentity(ServiceError):
    """The request reached the function without an authenticated caller: the method has no
    authorizer (a misconfigured stack). Jobs belong to callers, so none is run or shown."""

    code = "no_caller_identity"
    status = 403


def error_of(code: str, message: str, details: list[FieldError]) -> ServiceError:
    """A recorded error as the ServiceError that raised it (its class by its code)."""
    classes: list[type[ServiceError]] = [ServiceError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    found = next((cls for cls in classes if cls.code == code), ServiceError)
    return found(message, details)
