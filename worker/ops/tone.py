"""Tone and colour."""

from __future__ import annotations

from PIL import Image

from worker.ops.registry import implements


@implements("grayscale")
def grayscale(image: Image.Image) -> Image.Image:
    """Convert to shades of grey (ITU-R 601 luma), keeping transparency."""
    return image.convert("LA" if "A" in image.getbands() else "L")
