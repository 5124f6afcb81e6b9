"""Field checks for the Bedrock emulator's model bodies, written from the models' documented
rules and independent of the service's engines (the emulator plays AWS: sharing code with the
engines would make it agree with their bugs). Every failure names the field by its JSON path,
the way Bedrock's schema errors do."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Collection
from typing import Any

from PIL import Image, UnidentifiedImageError


class BodyError(ValueError):
    """The body breaks a rule of the model's schema: Bedrock answers ValidationException."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        where = f"#/{path}" if path else "#"
        super().__init__(
            f"Malformed input request: {where}: {problem}, please reformat your input and try again."
        )


def as_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BodyError(path, f"expected type: JSONObject, found: {type(value).__name__}")
    return value


def only_keys(body: dict[str, Any], allowed: Collection[str], path: str) -> None:
    for key in body:
        if key not in allowed:
            raise BodyError(f"{path}{key}", f"extraneous key [{key}] is not permitted")


def string(body: dict[str, Any], key: str, path: str, *, max_len: int, min_len: int = 0) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BodyError(path + key, "expected type: String")
    if not min_len <= len(value) <= max_len:
        raise BodyError(path + key, f"expected length {min_len}..{max_len}, actual: {len(value)}")
    return value


def number(body: dict[str, Any], key: str, path: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BodyError(path + key, "expected type: Number")
    if not low <= value <= high:
        raise BodyError(path + key, f"{value} is not within {low:g}..{high:g}")
    return float(value)


def integer(body: dict[str, Any], key: str, path: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BodyError(path + key, "expected type: Integer")
    if not low <= value <= high:
        raise BodyError(path + key, f"{value} is not within {low}..{high}")
    return value


def choice(body: dict[str, Any], key: str, path: str, allowed: Collection[str]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise BodyError(path + key, f"{value!r} is not a valid enum value; expected one of {sorted(allowed)}")
    return str(value)


def required(value: Any, path: str) -> Any:
    if value is None:
        raise BodyError(path, "required key not found")
    return value


def image(value: object, path: str, formats: Collection[str]) -> Image.Image:
    """Decode a base64 image and check its format (Pillow names: PNG, JPEG, WEBP)."""
    if not isinstance(value, str) or not value:
        raise BodyError(path, "expected a base64-encoded image string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyError(path, "is not valid base64") from exc
    try:
        decoded = Image.open(io.BytesIO(data))
        decoded.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise BodyError(path, "is not a readable image") from exc
    if decoded.format not in formats:
        raise BodyError(path, f"image format {decoded.format} is not supported; use {' or '.join(formats)}")
    return decoded
