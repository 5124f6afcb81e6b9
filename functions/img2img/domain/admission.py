"""Admission: everything the service refuses about a request's source without calling a model,
checked before anything is stored, recorded or queued. Both API routes (ApiDoor) admit a
request's source here, so POST /v1/jobs answers the same 400, 413 or 415 with the same code as
the sync route; the S3 door's jobs meet the same checks first thing in prepare_image (the object
is already stored there). The request's own rules (prompts, extras) are parse_request's."""

from __future__ import annotations

import base64
import binascii

from img2img.domain.errors import FieldError, InvalidRequest, PayloadTooLarge
from img2img.domain.imaging.guards import ImageLimits, open_source


def admit(data: bytes, limits: ImageLimits) -> None:
    """Raise the error the source would fail with (format, size, pixels, decode work), from its
    header and without decoding it."""
    _fmt, _png, source = open_source(data, limits)
    source.close()


def decode_inline_image(value: str, max_bytes: int) -> bytes:
    if len(value) > (max_bytes * 4) // 3 + 4:
        raise PayloadTooLarge(
            f"init_image is larger than {max_bytes} bytes: upload it with POST /v1/uploads and "
            "send init_image_s3_key instead",
            [FieldError("init_image", "too large for an inline request")],
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(
            "init_image is not valid base64", [FieldError("init_image", "not valid base64")]
        ) from exc
