"""The demo's source picture, drawn with Pillow so nothing is downloaded: a small landscape
(sky, sun, hills, a house) with enough structure that a transformed result is visibly so."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

SAMPLE_SIZE = (1024, 1024)  # an SDXL size: the pipeline can pass it through unscaled


def make_sample_image(size: tuple[int, int] = SAMPLE_SIZE) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.62)
    for y in range(horizon):  # sky: a vertical gradient
        t = y / max(horizon - 1, 1)
        draw.line([(0, y), (width, y)], fill=(int(70 + 120 * t), int(130 + 90 * t), int(220 + 25 * t)))
    sun = (int(width * 0.78), int(height * 0.2), int(height * 0.09))
    draw.ellipse([sun[0] - sun[2], sun[1] - sun[2], sun[0] + sun[2], sun[1] + sun[2]], fill=(255, 214, 90))
    draw.ellipse(
        [-width // 4, horizon - height // 6, width * 3 // 4, horizon + height // 3], fill=(70, 140, 60)
    )
    draw.ellipse(
        [width // 3, horizon - height // 9, width * 3 // 2, horizon + height // 3], fill=(55, 120, 50)
    )
    draw.rectangle([0, horizon + height // 12, width, height], fill=(85, 160, 70))
    # A house on the near hill.
    x0, y0 = int(width * 0.28), int(height * 0.52)
    w, h = width // 6, height // 8
    draw.rectangle([x0, y0, x0 + w, y0 + h], fill=(200, 80, 60))
    draw.polygon(
        [(x0 - w // 10, y0), (x0 + w // 2, y0 - h * 2 // 3), (x0 + w + w // 10, y0)], fill=(110, 50, 40)
    )
    draw.rectangle([x0 + w * 2 // 5, y0 + h // 2, x0 + w * 3 // 5, y0 + h], fill=(80, 50, 30))
    draw.rectangle([x0 + w // 10, y0 + h // 5, x0 + w // 3, y0 + h // 2], fill=(250, 240, 170))
    return image


def sample_png(size: tuple[int, int] = SAMPLE_SIZE) -> bytes:
    buffer = io.BytesIO()
    make_sample_image(size).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_sample(path: Path, size: tuple[int, int] = SAMPLE_SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sample_png(size))
    return path
