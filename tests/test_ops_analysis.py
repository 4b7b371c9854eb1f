"""Perceptual hashes against the imagehash package, and stats against numpy and scipy."""

from __future__ import annotations

import json

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage
from scipy.stats import entropy

from tests.images import alpha_ramp, scene
from worker.ops import analysis, pixels

CASES = [
    ((64, 64), 0, "RGB"), ((300, 200), 1, "RGB"), ((123, 457), 2, "L"), ((640, 480), 3, "RGBA"), ((9, 9), 4, "RGB"),
]

@pytest.fixture(autouse=True, params=["one band", "many bands"])
def bands(request, monkeypatch):
    """Run each test on whole images and again with bands of a few rows, so every seam is checked."""
    if request.param == "many bands":
        monkeypatch.setattr(pixels, "BAND_PIXELS", 600)


def hamming(a: str, b: str) -> int:
    """Return how many bits two hex strings of the same length differ in."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.mark.parametrize("hash_size", [8, 16])
@pytest.mark.parametrize(("size", "seed", "mode"), CASES)
def test_hashes_agree_with_imagehash(size, seed, mode, hash_size):
    # The same luma shrunk by the same Pillow Lanczos resize gives the same pixels, so aHash and dHash are
    # bit for bit imagehash's. pHash's DCT is a matrix product here and scipy's FFT there: coefficients
    # agree to ~1e-12, and none sits that close to the median, so its bits agree too (Hamming distance 0).
    image = scene(size, seed).convert(mode)
    ours = analysis.hashes(image, hash_size=hash_size)
    assert ours["ahash"] == str(imagehash.average_hash(image, hash_size))
    assert ours["dhash"] == str(imagehash.dhash(image, hash_size))
    assert hamming(ours["phash"], str(imagehash.phash(image, hash_size))) == 0
    assert len(ours["phash"]) == hash_size * hash_size // 4


def test_hashes_survive_small_changes_and_tell_images_apart():
    image = scene((400, 300), 5)
    smaller = analysis.hashes(image.resize((200, 150), Image.Resampling.BICUBIC))
    brighter = analysis.hashes(image.point(lambda v: min(255, v + 10)))
    other = analysis.hashes(scene((400, 300), 6))
    ours = analysis.hashes(image)
    for kind in ("ahash", "dhash", "phash"):
        assert hamming(ours[kind], smaller[kind]) <= 6 and hamming(ours[kind], brighter[kind]) <= 6
        assert hamming(ours[kind], other[kind]) >= 16


def test_stats_match_numpy_and_scipy():
    image = scene((203, 151), 7)
    image.putalpha(alpha_ramp(image.size))
    result = analysis.stats(image)
    json.dumps(result)
    values = np.asarray(image)
    assert list(result["channels"]) == ["R", "G", "B", "A"]
    for index, band in enumerate("RGBA"):
        channel = values[..., index].astype(np.float64)
        assert result["channels"][band]["mean"] == pytest.approx(channel.mean(), abs=5e-4)
        assert result["channels"][band]["std"] == pytest.approx(channel.std(), abs=5e-4)
        assert result["channels"][band]["histogram"] == np.bincount(values[..., index].ravel(), minlength=256).tolist()
    gray = np.asarray(image.convert("L"))
    assert result["entropy"] == pytest.approx(entropy(np.bincount(gray.ravel(), minlength=256), base=2), abs=1e-4)
    laplacian = ndimage.laplace(gray.astype(np.float64))[1:-1, 1:-1]  # the inside, where no border is involved
    assert result["sharpness"] == pytest.approx(laplacian.var(), abs=1e-3)
    assert (result["width"], result["height"], result["mode"]) == (203, 151, "RGBA")


def test_sharpness_falls_with_blur_and_entropy_of_a_flat_image_is_zero():
    image = scene((200, 150), 8)
    blurred = image.filter(ImageFilter.GaussianBlur(2))
    assert analysis.stats(blurred)["sharpness"] < analysis.stats(image)["sharpness"] / 4
    flat = analysis.stats(Image.new("L", (10, 10), 40))
    assert flat["entropy"] == 0 and flat["sharpness"] == 0 and flat["channels"]["L"]["std"] == 0
    assert analysis.stats(Image.new("L", (2, 2)))["sharpness"] == 0
