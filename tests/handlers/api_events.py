"""API Gateway REST proxy events (payload 1.0), the shape API Gateway sends the api function."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from img2img.domain.caller import Caller

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

ROUTES = {
    "/v1/jobs/": "/v1/jobs/{job_id}",
}


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
    """`identity`: requestContext.identity's caller fields; by default an IAM user's (AWS_IAM
    authorization), as API Gateway fills them after checking the signature."""
    resource, params = path, None
    if path.startswith("/v1/jobs/") and path.count("/") == 3:
        resource, params = "/v1/jobs/{job_id}", {"job_id": path.rsplit("/", 1)[1]}
    hdrs = {
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        **(headers or {}),
    }
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": "25/Nov/2026:10:00:00 +0000",
            "path": f"/v1{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "v1",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1795600000000,
            "requestId": request_id,
            "identity": {
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
                **(IAM_USER if identity is None else identity),
            },
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": raw_body if raw_body is not None else (json.dumps(body) if body is not None else None),
        "isBase64Encoded": False,
    }


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
