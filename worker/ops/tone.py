"""Tone and colour: curves applied to the colour bands, alpha left as it is."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from worker.ops.pixels import colour_histogram, curve, split_alpha, with_alpha
from worker.ops.registry import implements

LEVELS = np.arange(256, dtype=np.float64)
#: The common sepia matrix (rows: output R, G, B from input R, G, B).
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


@implements("grayscale")
def grayscale(image: Image.Image) -> Image.Image:
    """Convert to shades of grey (ITU-R 601 luma), keeping transparency."""
    return image.convert("LA" if "A" in image.getbands() else "L")


@implements("invert")
def invert(image: Image.Image) -> Image.Image:
    """Invert every colour band."""
    return curve(image, 255 - LEVELS)


@implements("autocontrast")
def autocontrast(image: Image.Image, *, cutoff: float = 0.0) -> Image.Image:
    """Stretch each colour band to 0-255, ignoring `cutoff` percent of the visible pixels at each end."""
    if not 0 <= cutoff < 50:
        raise ValueError(f"cutoff must be from 0 to less than 50 percent, got {cutoff}")
    colour, alpha = split_alpha(image)
    return with_alpha(ImageOps.autocontrast(colour, cutoff=cutoff, mask=alpha), alpha)


def equalize_curve(histogram: np.ndarray) -> np.ndarray:
    """Return the tone curve that equalises `histogram`: each level maps to its cumulative share, times 255."""
    total = histogram.sum()
    if total == 0:
        return LEVELS
    return 255 * np.cumsum(histogram) / total


@implements("equalize")
def equalize(image: Image.Image) -> Image.Image:
    """Equalise with one curve from the histogram of all colour bands (as skimage's equalize_hist)."""
    return curve(image, equalize_curve(colour_histogram(image)))


@implements("brightness")
def brightness(image: Image.Image, *, factor: float = 1.2) -> Image.Image:
    """Scale every colour value by `factor` (as PIL.ImageEnhance.Brightness)."""
    if factor < 0:
        raise ValueError(f"factor must be at least 0, got {factor}")
    return curve(image, LEVELS * factor)


@implements("contrast")
def contrast(image: Image.Image, *, factor: float = 1.2) -> Image.Image:
    """Scale distances from the mean grey by `factor` (as PIL.ImageEnhance.Contrast)."""
    if factor < 0:
        raise ValueError(f"factor must be at least 0, got {factor}")
    grey = np.asarray(image.convert("L").histogram(), dtype=np.float64)
    mean = int((grey * LEVELS).sum() / max(grey.sum(), 1) + 0.5)
    return curve(image, mean + (LEVELS - mean) * factor)


@implements("gamma")
def gamma(image: Image.Image, *, gamma: float = 0.8) -> Image.Image:
    """Map each value v to 255 * (v / 255) ** gamma (as skimage's adjust_gamma)."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return curve(image, 255 * (LEVELS / 255) ** gamma)


@implements("posterize")
def posterize(image: Image.Image, *, bits: int = 4) -> Image.Image:
    """Keep the top `bits` bits of every colour value."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be from 1 to 8, got {bits}")
    return curve(image, LEVELS.astype(np.int64) & (0xFF << (8 - bits)) & 0xFF)


@implements("sepia")
def sepia(image: Image.Image, *, amount: float = 1.0) -> Image.Image:
    """Mix each pixel with its sepia tone: 0 leaves it, 1 is full sepia."""
    if not 0 <= amount <= 1:
        raise ValueError(f"amount must be from 0 to 1, got {amount}")
    colour, alpha = split_alpha(image)
    matrix = (1 - amount) * np.eye(3) + amount * SEPIA
    flat = tuple(float(v) for row in matrix for v in (*row, 0.0))
    rgb = colour if colour.mode == "RGB" else colour.convert("RGB")
    return with_alpha(rgb.convert("RGB", flat), alpha)
