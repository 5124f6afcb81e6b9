"""Admission: everything the service refuses about a request's source without calling a model,
checked before anything is stored, recorded or queued. Both API routes (ApiDoor) admit a
request here, so POST /v1/jobs answers the same 400, 413 or 415 with the same code as the sync
route; the S3 door's jobs meet the same checks first thing in prepare_image (the object is
already stored there). The request's own rules (prompts, extras) are parse_request's."""

from __future__ import annotations

import base64
import binascii

from img2img.domain.door_settings import DoorSettings
from img2img.domain.errors import FieldError, InvalidRequest, PayloadTooLarge
from img2img.domain.imaging.guards import open_source
from img2img.domain.ports import ObjectStorePort
from img2img.domain.request import ImageToImageRequest


def admit(request: ImageToImageRequest, store: ObjectStorePort, settings: DoorSettings) -> None:
    """Raise the error the request's source would fail with, before anything is stored. A
    source by key is read (a missing one is source_not_found): the caller's own upload."""
    if request.init_image is not None:
        data = decode_inline_image(request.init_image, settings.max_image_bytes)
    else:
        assert request.init_image_s3_key is not None  # the request schema guarantees one of them
        limits = settings.image_limits
        data = store.get(settings.input_bucket, request.init_image_s3_key, max_bytes=limits.max_bytes).data
    _fmt, _png, source = open_source(data, settings.image_limits)
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
