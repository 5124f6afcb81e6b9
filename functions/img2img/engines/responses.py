"""Strict readers for model responses: a field that is missing or of the wrong type is a
ModelError naming the family and the field, never a KeyError deep in the pipeline."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from img2img.domain.errors import ModelError


def first_of(payload: dict[str, Any], key: str, family: str) -> Any:
    """The first element of a list field (Bedrock answers one image per call)."""
    value = payload.get(key)
    if not isinstance(value, list) or not value:
        raise ModelError(f"the {family} response has no {key!r} list")
    return value[0]


def decode_image(value: object, family: str, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ModelError(f"the {family} response has no base64 image in {field!r}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ModelError(f"the {family} response's {field!r} is not valid base64") from exc


def require_int(value: object, family: str, field: str) -> int:
    # bool is an int in Python but never a seed.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(f"the {family} response's {field!r} is not an integer")
    return value
