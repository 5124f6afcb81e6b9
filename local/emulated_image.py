"""The Bedrock emulator's stand-in for a diffusion model: NOT a model. The result is the source
blended with a smooth colour pattern, so that it visibly follows the request:

- the model id, the seed and the prompt pick the pattern: same inputs, same bytes; another seed
  or another model, another image;
- the share of the source that is kept follows the family's strength knob (SDXL image_strength,
  SD3 1 - strength, Nova/Titan similarityStrength): higher keeps the result closer to the source;
- a style preset adds a tint of its own colour;
- a caption in the corner says it is emulated, and by which model id.

Everything is whole-image Pillow operations (a few milliseconds at 1024x1024), no pixel loops."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageFilter

PATTERN_CELLS = 8  # the pattern is an 8x8 grid of random colours, smoothly upscaled
TINT_SHARE = 0.25


def render(
    source: Image.Image,
    *,
    keep: float,
    seed: int,
    prompt: str,
    size: tuple[int, int],
    style: str | None,
    model_id: str = "",
) -> Image.Image:
    base = source.convert("RGB")
    if base.size != size:
        base = base.resize(size, Image.Resampling.BILINEAR)
    result = Image.blend(pattern(seed, prompt, size, model_id), base, keep)
    if style:
        result = Image.blend(result, Image.new("RGB", size, tint_of(style)), TINT_SHARE)
    caption(result, f"EMULATED by local mode: {model_id}" if model_id else "EMULATED by local mode")
    return result


def caption(image: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(image)
    *_, right, bottom = draw.textbbox((8, 8), text)
    draw.rectangle((4, 4, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((8, 8), text, fill=(255, 255, 255))


def pattern(seed: int, prompt: str, size: tuple[int, int], model_id: str = "") -> Image.Image:
    # random.Random seeded with a str hashes it with SHA-512: stable across processes.
    rng = random.Random(f"{model_id}\n{seed}\n{prompt}")  # noqa: S311 - a picture pattern, not a secret
    cells = rng.randbytes(PATTERN_CELLS * PATTERN_CELLS * 3)
    grid = Image.frombytes("RGB", (PATTERN_CELLS, PATTERN_CELLS), cells)
    return grid.resize(size, Image.Resampling.BICUBIC)


def tint_of(style: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(style.encode()).digest()
    return digest[0], digest[1], digest[2]


def blurred(image: Image.Image) -> Image.Image:
    """What a content filter sends back instead of the picture: unrecognisable."""
    small = image.resize((max(1, image.width // 32), max(1, image.height // 32)), Image.Resampling.BOX)
    return small.filter(ImageFilter.BoxBlur(1)).resize(image.size, Image.Resampling.BILINEAR)


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # speed over size: it is a stand-in
    return buffer.getvalue()
