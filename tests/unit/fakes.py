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


@dataclass
class FakeBedrock:
    """Answers like SDXL on Bedrock: one artifact, the seed it used, a small PNG."""

    finish_reason: str = "SUCCESS"
    errors: list[str] = field(default_factory=list)  # raised first, one per call
    calls: list[dict[str, Any]] = field(default_factory=list)
    meta: Any = field(default_factory=lambda: SimpleNamespace(region_name="us-east-1"))

    def invoke_model(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({**kwargs, "body": json.loads(kwargs["body"])})
        if self.errors:
            code = self.errors.pop(0)
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": f"fake {code}"},
                    "ResponseMetadata": {"HTTPStatusCode": STATUS[code]},
                },
                "InvokeModel",
            )
        body = self.calls[-1]["body"]
        seed = body.get("seed") or 1234
        payload = {
            "result": "success",
            "artifacts": [
                {
                    "seed": seed,
                    "base64": base64.b64encode(png_bytes(64, 64)).decode(),
                    "finishReason": self.finish_reason,
                }
            ],
        }
        return {"body": io.BytesIO(json.dumps(payload).encode()), "ResponseMetadata": {"HTTPHeaders": {}}}
