"""Synthetic photo-like images, seeded, for benchmarks and tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Size = tuple[int, int]


def photo(size: Size = (4000, 3000), seed: int = 0) -> Image.Image:
    """Return an RGB image with a photo's mix of smooth light, hard edges, texture and sensor noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    light = rng.integers(30, 226, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(light, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(24):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(min(size) // 40, min(size) // 6))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(max(1.0, min(size) / 1500)))
    texture = rng.normal(0.0, 6.0, size=(height // 4 + 1, width // 4 + 1)).astype(np.float32)
    grain = Image.fromarray(np.clip(texture + 128, 0, 255).astype(np.uint8), "L").resize(size)
    noise = rng.integers(-5, 6, size=(height, width, 1), dtype=np.int16)
    pixels = np.asarray(image, dtype=np.int16) + (np.asarray(grain, dtype=np.int16) - 128)[..., None] + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def jpeg(size: Size = (4000, 3000), seed: int = 0, quality: int = 90) -> bytes:
    """Return a photo-like JPEG, encoded as a camera would (4:2:0, no progressive scan)."""
    buffer = io.BytesIO()
    photo(size, seed).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
