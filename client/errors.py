"""Exit codes and the errors that carry them. Every failure the command reports is one of
these: a stable `code` for --json, a one-line `message` for people, and the exit status."""

from __future__ import annotations

OK = 0
JOB_FAILED = 1  # the job ran and FAILED, or the service failed (HTTP 5xx)
USAGE = 2  # bad arguments, an unreadable or unsupported image (argparse uses 2 as well)
CONTENT_FILTERED = 3  # the model's safety filter blocked the prompt or the image
REJECTED = 4  # the service refused the request (HTTP 4xx: a bad field, an unknown job...)
CONFIGURATION = 5  # credentials, the stack, its outputs, auth (401/403), or doctor found problems
UNREACHABLE = 6  # the service could not be reached, or the wait gave up (--timeout)
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
  6  the service could not be reached, or waiting gave up (--timeout)
  130 interrupted (Ctrl-C)"""


class ClientError(Exception):
    """A failure the command reports in one line and exits with."""

    exit_code = JOB_FAILED
    code = "failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


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
