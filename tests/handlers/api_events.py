"""API Gateway REST proxy events (payload 1.0), the shape API Gateway sends the api function."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.utilities.typing import LambdaContext

from img2img.domain.caller import Caller
from img2img_local.api_front import GatewayStyle, HttpRequest, build_proxy_event

# A deployed stage on the execute-api domain (requestContext.path carries the stage).
STAGE = GatewayStyle(stage="v1", api_id="abc123", stage_in_path=True, forwarded_proto="https")
# What the authorizer fills in: the fields that name the caller.
CALLER_FIELDS = ("accountId", "caller", "accessKey", "userArn", "user", "apiKey", "apiKeyId")

# requestContext.identity of an AWS_IAM-authorized request ($context.identity.* in
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html)
IAM_USER = {
    "accountId": "123456789012",
    "caller": "AIDACKCEVSQ6C2EXAMPLE",
    "accessKey": "AKIAIOSFODNN7EXAMPLE",
    "userArn": "arn:aws:iam::123456789012:user/alice",
    "user": "AIDACKCEVSQ6C2EXAMPLE",
}
OTHER_IAM_USER = {
    "accountId": "123456789012",
    "caller": "AIDAJQABLZS4A3QDU576Q",
    "accessKey": "AKIAI44QH8DHBEXAMPLE",
    "userArn": "arn:aws:iam::123456789012:user/bob",
    "user": "AIDAJQABLZS4A3QDU576Q",
}

OWN_UPLOADS = Caller("iam", IAM_USER["user"]).upload_prefix  # where IAM_USER's upload tickets point


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event local mode's API front builds (local/api_front.py: one factory for the shape),
    as a deployed stage sends it. `identity`: requestContext.identity's caller fields; by
    default an IAM user's (AWS_IAM authorization), as API Gateway fills them after checking the
    signature ({} for none)."""
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else "")
    request = HttpRequest(
        method=method,
        raw_path=path,
        query_string=urlencode(query or {}),
        headers=list(
            {
                "Content-Type": "application/json",
                "Host": "abc123.execute-api.us-east-1.amazonaws.com",
                "User-Agent": "pytest",
                **(headers or {}),
            }.items()
        ),
        body=text.encode(),
        source_ip="203.0.113.7",
        server_port=443,
    )
    event = build_proxy_event(request, STAGE)
    found = event["requestContext"]["identity"]
    event["requestContext"]["identity"] = {
        **{key: value for key, value in found.items() if key not in CALLER_FIELDS},
        **(IAM_USER if identity is None else identity),
    }
    return event


class FakeContext(LambdaContext):
    def __init__(self, name: str = "img2img-unit-api", remaining_ms: int = 60_000) -> None:
        self._remaining_ms = remaining_ms
        self._function_name = name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self._memory_limit_in_mb = 1024
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{name}"
        self._log_stream_name = "2026/11/25/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms
