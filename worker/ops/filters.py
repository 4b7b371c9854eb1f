"""Filters: Gaussian blur, unsharp mask, Sobel edges and median denoising."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageFilter

from worker.ops.pixels import banded, halo_bands, with_alpha
from worker.ops.registry import implements

PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
#: A full black-to-white step has a Sobel magnitude of 4 * 255; edges shows it as white.
STEP = 4.0


def reach(radius: float) -> int:
    """Return how many rows away Pillow's Gaussian blur of `radius` reads: three box blurs' worth."""
    return 3 * (math.ceil(math.sqrt(4 * radius * radius + 1) / 2) + 1)


def _premultiplied_blur(radius: float) -> Callable[[Image.Image], Image.Image]:
    """Return a Gaussian blur that works premultiplied where there is alpha."""
    def apply(image: Image.Image) -> Image.Image:
        if image.mode in PREMULTIPLIED:  # so transparent pixels' colours do not bleed into visible ones
            return image.convert(PREMULTIPLIED[image.mode]).filter(ImageFilter.GaussianBlur(radius)).convert(image.mode)
        return image.filter(ImageFilter.GaussianBlur(radius))
    return apply


@implements("blur")
def blur(image: Image.Image, *, radius: float = 2.0) -> Image.Image:
    """Blur with a Gaussian of standard deviation `radius` (Pillow's, on premultiplied alpha), band by band."""
    if radius < 0:
        raise ValueError(f"radius must be at least 0, got {radius}")
    if radius == 0:
        return image.copy()
    return banded(image, _premultiplied_blur(radius), reach(radius))


@implements("sharpen")
def sharpen(image: Image.Image, *, radius: float = 2.0, amount: float = 1.5, threshold: int = 3) -> Image.Image:
    """Unsharp mask: add `amount` times the difference from a Gaussian blur, where it exceeds `threshold`."""
    if radius < 0 or amount < 0 or not 0 <= threshold <= 255:
        raise ValueError(f"need radius >= 0, amount >= 0 and threshold 0-255, got {radius}, {amount}, {threshold}")
    mask = ImageFilter.UnsharpMask(radius, round(amount * 100), threshold)
    out = banded(image, lambda band: band.filter(mask), reach(radius))
    if "A" in image.getbands():
        out.putalpha(image.getchannel("A"))  # sharpen the colours, not the outline
    return out


def sobel_bands(gray: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (top row, float32 Sobel gradient magnitude) by bands of an L image; borders as scipy.ndimage's."""
    for top, block in halo_bands(gray):
        block = block.astype(np.int16)
        across = block[:, 2:] - block[:, :-2]  # d/dx, then smoothed down the columns
        gx = (across[:-2] + 2 * across[1:-1] + across[2:]).astype(np.float32)
        along = block[:, :-2] + 2 * block[:, 1:-1] + block[:, 2:]  # smoothed along the rows, then d/dy
        gy = (along[2:] - along[:-2]).astype(np.float32)
        yield top, np.sqrt(gx * gx + gy * gy)


@implements("edges")
def edges(image: Image.Image, *, normalize: bool = False) -> Image.Image:
    """Return the Sobel gradient magnitude of the luma as grey, keeping transparency."""
    gray = image.convert("L")
    scale = 1 / STEP
    if normalize:
        strongest = max(float(band.max()) for _, band in sobel_bands(gray))
        scale = 255 / strongest if strongest else 0.0
    out = Image.new("L", image.size)
    for top, band in sobel_bands(gray):
        band *= scale
        out.paste(Image.fromarray(np.rint(np.clip(band, 0, 255, out=band)).astype(np.uint8)), (0, top))
    return with_alpha(out, image.getchannel("A")) if "A" in image.getbands() else out


def _med3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Return the elementwise median of three arrays."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def median3(block: np.ndarray) -> np.ndarray:
    """Return the 3x3 median of the inside of an (H+2, W+2[, C]) block.

    Each column of three is sorted once; the median of nine is then the median of the
    largest low, the middle middle and the smallest high of three neighbouring columns.
    """
    a, b, c = block[:-2], block[1:-1], block[2:]
    low, high = np.minimum(a, b), np.maximum(a, b)
    mid = np.maximum(low, np.minimum(high, c))
    low, high = np.minimum(low, c), np.maximum(high, c)
    lows = np.maximum(np.maximum(low[:, :-2], low[:, 1:-1]), low[:, 2:])
    highs = np.minimum(np.minimum(high[:, :-2], high[:, 1:-1]), high[:, 2:])
    return _med3(lows, _med3(mid[:, :-2], mid[:, 1:-1], mid[:, 2:]), highs)


@implements("denoise")
def denoise(image: Image.Image, *, size: int = 3) -> Image.Image:
    """Replace each value by the median of its size x size window, in every band; borders repeat."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd number of at least 3, got {size}")
    if size > 3:  # larger windows: Pillow's rank filter, by bands with the rows each window reaches
        return banded(image, lambda band: band.filter(ImageFilter.MedianFilter(size)), size // 2)
    out = Image.new(image.mode, image.size)
    for top, block in halo_bands(image):
        out.paste(Image.fromarray(median3(block), image.mode), (0, top))
    return out
