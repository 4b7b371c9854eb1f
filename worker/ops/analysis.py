"""Analysis: ops that measure the image and return JSON, leaving the image as it is."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from worker.ops.registry import implements


def luminance(image: Image.Image) -> np.ndarray:
    """Return the image's luma as a float32 array."""
    return np.asarray(image.convert("L"), dtype=np.float32)


def laplacian_variance(gray: np.ndarray) -> float:
    """Return the variance of the 4-neighbour Laplacian: higher means sharper."""
    if min(gray.shape) < 3:
        return 0.0
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1]
    return float(lap.var())


def entropy(histogram: np.ndarray) -> float:
    """Return the Shannon entropy in bits of a histogram."""
    p = histogram[histogram > 0] / histogram.sum()
    return float(-(p * np.log2(p)).sum())


@implements("stats")
def stats(image: Image.Image) -> dict[str, Any]:
    """Measure per-channel mean, std and histogram, luma entropy and sharpness."""
    data = np.asarray(image)
    data = data.reshape(data.shape[0], data.shape[1], -1)
    channels = {}
    for index, band in enumerate(image.getbands()):
        values = data[..., index]
        histogram = np.bincount(values.ravel(), minlength=256)
        channels[band] = {
            "mean": round(float(values.mean()), 3),
            "std": round(float(values.std()), 3),
            "histogram": histogram.tolist(),
        }
    gray = luminance(image)
    luma_histogram = np.bincount(gray.astype(np.uint8).ravel(), minlength=256)
    return {
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "channels": channels,
        "entropy": round(entropy(luma_histogram), 4),
        "sharpness": round(laplacian_variance(gray), 3),
    }
