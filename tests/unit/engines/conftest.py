"""Builders for engine tests: requests through the real contract parser, prepared images as
real PNGs (the engines only base64 them, but a real image keeps the tests honest)."""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from img2img.domain.imaging import PreparedImage
from img2img.domain.request import ImageToImageRequest, parse_request

RequestFactory = Callable[..., ImageToImageRequest]
ImageFactory = Callable[..., PreparedImage]


@functools.lru_cache(maxsize=32)
def png_bytes(width: int, height: int, color: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    """Encoded once per arguments (bytes: no test can change them; a 4096x4096 takes a while)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def make_request() -> RequestFactory:
    def build(**fields: Any) -> ImageToImageRequest:
        body: dict[str, Any] = {
            "text_prompts": [{"text": "a red fox in snow"}],
            "init_image_s3_key": "uploads/fox.png",
        }
        body.update(fields)
        return parse_request(body)

    return build


@pytest.fixture
def make_image() -> ImageFactory:
    def build(width: int = 1024, height: int = 1024) -> PreparedImage:
        return PreparedImage(
            png=png_bytes(width, height),
            width=width,
            height=height,
            source_format="png",
            source_width=width,
            source_height=height,
            resize_mode="fit",
            passthrough=True,
        )

    return build
