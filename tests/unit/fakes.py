"""Test doubles for the one thing moto cannot fake in-process: Bedrock Runtime InvokeModel.
`FakeBedrock` has the boto3 client's `invoke_model` signature and raises real botocore
ClientErrors, so the real adapter's error translation is what gets tested."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image

STATUS = {
    "ThrottlingException": 429,
    "ModelTimeoutException": 408,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "ValidationException": 400,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelErrorException": 424,
}


def png_bytes(width: int = 1024, height: int = 1024, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


# The documented non-success answers of the live Stability models: the reason, no seeds, no images.
NOT_SUCCESS = {"CONTENT_FILTERED": "Filter reason: prompt", "ERROR": "Inference error"}


@dataclass
class FakeBedrock:
    """Answers like the live Stability models on Bedrock (docs/models.md): one seed, one
    finish reason, a small PNG; a filtered or failed call the reason alone."""

    finish_reason: str = "SUCCESS"
    errors: list[str] = field(default_factory=list)  # raised first, one per call
    gone: set[str] = field(default_factory=set)  # model ids that answer end of life, every time
    calls: list[dict[str, Any]] = field(default_factory=list)
    meta: Any = field(default_factory=lambda: SimpleNamespace(region_name="us-east-1"))

    def invoke_model(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({**kwargs, "body": json.loads(kwargs["body"])})
        if kwargs["modelId"] in self.gone:
            raise client_error(
                "ResourceNotFoundException", "This model version has reached the end of its life."
            )
        if self.errors:
            code = self.errors.pop(0)
            raise client_error(code, f"fake {code}")
        body = self.calls[-1]["body"]
        seed = body.get("seed") or 1234
        payload: dict[str, Any]
        if self.finish_reason in NOT_SUCCESS:
            payload = {"finish_reasons": [NOT_SUCCESS[self.finish_reason]]}
        else:
            payload = {
                "seeds": [seed],
                "finish_reasons": [None],
                "images": [base64.b64encode(png_bytes(64, 64)).decode()],
            }
        return {"body": io.BytesIO(json.dumps(payload).encode()), "ResponseMetadata": {"HTTPHeaders": {}}}


def client_error(code: str, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": STATUS[code]}},
        "InvokeModel",
    )
