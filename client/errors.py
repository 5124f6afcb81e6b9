"""Exit codes and the errors that carry them. Every failure the command reports is one of
these: a stable `code` for --json, a one-line `message` for people, the exit status, and, where
it is known, the kind of `problem` (network, credentials, access, lifecycle) so nobody calls a
network failure a credentials problem."""

from __future__ import annotations

from typing import Literal

import botocore.exceptions

OK = 0
JOB_FAILED = 1  # the job ran and FAILED, or the service failed (HTTP 5xx)
USAGE = 2  # bad arguments, an unreadable or unsupported image (argparse uses 2 as well)
CONTENT_FILTERED = 3  # the model's safety filter blocked the prompt or the image
REJECTED = 4  # the service refused the request (HTTP 4xx: a bad field, an unknown job...)
CONFIGURATION = 5  # credentials, the stack, its outputs, auth (401/403), or doctor found problems
UNREACHABLE = 6  # the service or AWS could not be reached, or the wait gave up (--timeout)
INTERRUPTED = 130  # Ctrl-C

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  the job FAILED (model or storage error), or the service failed (HTTP 5xx)
  2  usage: bad arguments, an unreadable or unsupported image
  3  CONTENT_FILTERED: the model's safety filter blocked the prompt or the image
  4  the service rejected the request: HTTP 4xx (invalid field, unknown job, too large), or
     a job that failed on its input (unsupported or unreadable image, bad S3 metadata)
  5  configuration: credentials, stack or outputs missing, not authorized; doctor found problems
  6  the service or AWS could not be reached (a network problem), or waiting gave up
     (--timeout)
  130 interrupted (Ctrl-C)"""


# What kind of problem a failure is (doctor's checks and --json errors name it).
Problem = Literal["network", "credentials", "access", "lifecycle", "configuration"]

# AWS error codes that mean the credentials themselves are bad or stale.
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "TokenRefreshRequired",
    }
)
# AWS error codes that mean the credentials are fine but not allowed to do this.
ACCESS_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "Forbidden"}
)
CREDENTIALS_FIX = "run `aws configure` or `aws sso login`, or set AWS_PROFILE"


class ClientError(Exception):
    """A failure the command reports in one line and exits with."""

    exit_code = JOB_FAILED
    code = "failed"
    problem: Problem | None = None

    def __init__(self, message: str, *, code: str | None = None, problem: Problem | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if problem is not None:
            self.problem = problem


class UsageError(ClientError):
    exit_code = USAGE
    code = "usage"


class RequestRejected(ClientError):
    exit_code = REJECTED
    code = "rejected"


class ServiceFailed(ClientError):
    exit_code = JOB_FAILED
    code = "service_error"


class ConfigurationError(ClientError):
    exit_code = CONFIGURATION
    code = "configuration"


class Unreachable(ClientError):
    exit_code = UNREACHABLE
    code = "unreachable"
    problem: Problem | None = "network"


def problem_of(exc: BaseException) -> Problem | None:
    """The kind of problem a botocore exception is, when it says."""
    if isinstance(
        exc,
        botocore.exceptions.ConnectionError  # EndpointConnectionError, ConnectTimeoutError, proxy, TLS
        | botocore.exceptions.HTTPClientError,  # ReadTimeoutError, ConnectionClosedError
    ):
        return "network"
    if isinstance(
        exc,
        botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.CredentialRetrievalError
        | botocore.exceptions.TokenRetrievalError
        | botocore.exceptions.SSOError,
    ):
        return "credentials"
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in CREDENTIAL_CODES:
            return "credentials"
        if code in ACCESS_CODES:
            return "access"
    return None


def from_aws(what: str, exc: Exception) -> ClientError:
    """A botocore failure of `what` (e.g. "get s3://b/k") as the error the command reports. The
    code is AWS's error code when AWS answered, else the kind of problem."""
    problem = problem_of(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "aws_error"
        detail = f"{code}: {error.get('Message', '')}"
    else:
        code, detail = (
            {"network": "unreachable", "credentials": "credentials"}.get(problem or "", "aws_error"),
            str(exc),
        )
    if problem == "network":
        return Unreachable(f"{what}: network problem: {detail}", code=code)
    if problem == "credentials":
        return ConfigurationError(
            f"{what}: AWS credentials problem: {detail}; {CREDENTIALS_FIX}", code=code, problem=problem
        )
    if problem == "access":
        return ConfigurationError(
            f"{what}: access denied: {detail}; your AWS principal needs the permission",
            code=code,
            problem=problem,
        )
    if code == "NoSuchBucket" or isinstance(
        exc, botocore.exceptions.ProfileNotFound | botocore.exceptions.NoRegionError
    ):
        return ConfigurationError(f"{what}: {detail}", code=code, problem="configuration")
    return ServiceFailed(f"{what}: {detail}", code=code)
