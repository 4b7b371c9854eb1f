"""Analysis: ops that measure the image and return JSON, leaving the image as it is."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from worker.ops.pixels import halo_bands
from worker.ops.registry import implements

LEVELS = np.arange(256, dtype=np.float64)
#: pHash looks at the lowest frequencies of a DCT of an image this many times the hash's side.
PHASH_FACTOR = 4


def moments(histogram: np.ndarray) -> tuple[float, float]:
    """Return the mean and standard deviation of the values a 256-bin histogram counts."""
    total = histogram.sum()
    if total == 0:
        return 0.0, 0.0
    mean = float((histogram * LEVELS).sum() / total)
    return mean, float(np.sqrt((histogram * (LEVELS - mean) ** 2).sum() / total))


def entropy(histogram: np.ndarray) -> float:
    """Return the Shannon entropy in bits of a histogram."""
    p = histogram[histogram > 0] / histogram.sum()
    return max(0.0, float(-(p * np.log2(p)).sum()))


def laplacian_variance(gray: Image.Image) -> float:
    """Return the variance of the 4-neighbour Laplacian over the inside of an L image: higher is sharper."""
    if min(gray.size) < 3:
        return 0.0
    count = total = squares = 0
    for top, block in halo_bands(gray):
        block = block.astype(np.int16)  # within +-4 * 255
        lap = block[:-2, 1:-1] + block[2:, 1:-1] + block[1:-1, :-2] + block[1:-1, 2:] - 4 * block[1:-1, 1:-1]
        first, last = (1 if top == 0 else 0), lap.shape[0] - (1 if top + lap.shape[0] == gray.height else 0)
        inside = lap[first:last, 1:-1]  # border pixels would see the repeated edge, not a neighbour
        wide = inside.astype(np.int64)
        count, total, squares = count + wide.size, total + int(wide.sum()), squares + int((wide * wide).sum())
    return max(0.0, (squares - total * total / count) / count)


@implements("stats")
def stats(image: Image.Image) -> dict[str, Any]:
    """Measure per-channel mean, std and histogram, luma entropy and sharpness."""
    histograms = np.asarray(image.histogram(), dtype=np.int64).reshape(-1, 256)
    channels = {}
    for band, histogram in zip(image.getbands(), histograms, strict=True):
        mean, std = moments(histogram)
        channels[band] = {"mean": round(mean, 3), "std": round(std, 3), "histogram": histogram.tolist()}
    gray = image.convert("L")
    return {
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "channels": channels,
        "entropy": round(entropy(np.asarray(gray.histogram())), 4),
        "sharpness": round(laplacian_variance(gray), 3),
    }


@cache
def dct_matrix(n: int) -> np.ndarray:
    """Return the n x n DCT-II matrix, unnormalised as scipy.fftpack.dct's default."""
    k, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return 2 * np.cos(np.pi * k * (2 * x + 1) / (2 * n))


def shrink(gray: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Return `gray` resized to `size` with Lanczos, as float64 (the imagehash package's first step)."""
    return np.asarray(gray.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def hex_bits(bits: np.ndarray) -> str:
    """Return the bits, row by row and most significant first, as zero-padded hex (as imagehash's str())."""
    flat = bits.ravel()
    value = int("".join("1" if b else "0" for b in flat), 2)
    return f"{value:0{(flat.size + 3) // 4}x}"


def average_hash(gray: Image.Image, size: int) -> np.ndarray:
    """Return the aHash bits: which pixels of a size x size thumbnail beat its mean."""
    pixels = shrink(gray, (size, size))
    return pixels > pixels.mean()


def difference_hash(gray: Image.Image, size: int) -> np.ndarray:
    """Return the dHash bits: which pixels of a (size+1) x size thumbnail are brighter than their left neighbour."""
    pixels = shrink(gray, (size + 1, size))
    return pixels[:, 1:] > pixels[:, :-1]


def perceptual_hash(gray: Image.Image, size: int) -> np.ndarray:
    """Return the pHash bits: which of the lowest size x size DCT frequencies beat their median."""
    side = size * PHASH_FACTOR
    basis = dct_matrix(side)
    low = (basis @ shrink(gray, (side, side)) @ basis.T)[:size, :size]
    return low > np.median(low)


@implements("hash")
def hashes(image: Image.Image, *, hash_size: int = 8) -> dict[str, Any]:
    """Return the aHash, dHash and pHash of the image's luma as hex strings."""
    if hash_size < 2:
        raise ValueError(f"hash_size must be at least 2, got {hash_size}")
    gray = image.convert("L")
    return {
        "hash_size": hash_size,
        "ahash": hex_bits(average_hash(gray, hash_size)),
        "dhash": hex_bits(difference_hash(gray, hash_size)),
        "phash": hex_bits(perceptual_hash(gray, hash_size)),
    }
