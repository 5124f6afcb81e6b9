"""The context object the Python Lambda runtime passes to a handler, with the same attribute
names and types (awslambdaric's LambdaContext), so Powertools' Logger, Metrics and the
handlers' deadline checks behave as on AWS."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from img2img_local import resources as r


@dataclass(frozen=True)
class CognitoIdentity:
    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: str  # a string on AWS too: the runtime copies an environment variable
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(self.deadline_ms - int(time.time() * 1000), 0)

    def log(self, message: str) -> None:
        print(message, end="" if message.endswith("\n") else "\n", flush=True)


def new_context(function_name: str, *, timeout_seconds: float, memory_mb: int) -> LambdaContext:
    """A fresh context for one invocation, its deadline counted from now."""
    day = time.strftime("%Y/%m/%d", time.gmtime())
    return LambdaContext(
        function_name=function_name,
        memory_limit_in_mb=str(memory_mb),
        invoked_function_arn=f"arn:aws:lambda:{r.REGION}:{r.ACCOUNT_ID}:function:{function_name}",
        aws_request_id=str(uuid.uuid4()),
        deadline_ms=int(time.time() * 1000 + timeout_seconds * 1000),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=f"{day}/[$LATEST]{uuid.uuid4().hex}",
    )
