"""k-means quantisation and palettes, against scikit-learn's KMeans as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.cluster import KMeans

from tests.images import alpha_ramp, scene
from worker.ops import ml, pixels


@pytest.fixture(autouse=True, params=["one band", "many bands"])
def bands(request, monkeypatch):
    """Run each test on whole images and again with bands of a few rows, so every seam is checked."""
    if request.param == "many bands":
        monkeypatch.setattr(pixels, "BAND_PIXELS", 600)


def inertia(image: Image.Image, quantized: Image.Image) -> float:
    """Return the sum of squared distances from each pixel to the colour it became."""
    diff = np.asarray(image, dtype=np.float64) - np.asarray(quantized, dtype=np.float64)
    return float((diff**2).sum())


@pytest.mark.parametrize(("size", "k"), [((160, 120), 4), ((160, 120), 8), ((160, 120), 16), ((400, 300), 8)])
def test_quantize_inertia_is_within_five_percent_of_sklearn(size, k):
    # sklearn fits every pixel with k-means++ (its default single init); we fit a seeded sample of at most
    # 50,000 pixels (all of them at 160x120, 42% at 400x300) and round the centres to whole colour values
    image = scene(size, seed=5)
    points = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    reference = KMeans(n_clusters=k, n_init=1, random_state=0).fit(points).inertia_
    assert inertia(image, ml.quantize(image, colors=k)) <= 1.05 * reference


def test_kmeans_finds_well_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[20.0, 20, 20], [200, 30, 30], [30, 200, 30], [30, 30, 200]])
    points = np.concatenate([c + rng.normal(0, 4, size=(500, 3)) for c in centres])
    found = ml.kmeans(points, 4, seed=3)
    assert np.abs(np.sort(found, axis=0) - np.sort(centres, axis=0)).max() < 1.0


def test_quantize_is_deterministic_for_a_seed():
    image = scene((400, 300), seed=6)
    first = np.asarray(ml.quantize(image, colors=8, seed=7))
    assert np.array_equal(first, np.asarray(ml.quantize(image, colors=8, seed=7)))
    assert len(np.unique(first.reshape(-1, 3), axis=0)) <= 8


def test_an_image_with_few_colours_keeps_them_exactly():
    image = Image.new("RGB", (30, 20), (10, 20, 30))
    image.paste((200, 100, 0), (0, 0, 10, 20))
    image.paste((0, 0, 255), (25, 0, 30, 20))
    assert np.array_equal(np.asarray(ml.quantize(image, colors=8)), np.asarray(image))


def test_quantize_grey_stays_grey():
    gray = scene((80, 60)).convert("L")
    out = ml.quantize(gray, colors=4)
    assert out.mode == "L" and len(np.unique(np.asarray(out))) <= 4


def test_quantize_keeps_alpha_and_ignores_transparent_pixels():
    image = Image.new("RGBA", (40, 20), (255, 0, 0, 0))  # invisible red
    image.paste((0, 0, 255, 255), (0, 0, 20, 10))
    image.paste((0, 255, 0, 255), (20, 10, 40, 20))
    image.paste((0, 128, 128, 200), (0, 10, 20, 20))
    out = ml.quantize(image, colors=3)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(image.getchannel("A")))
    visible = np.asarray(out)[np.asarray(image.getchannel("A")) > 0][:, :3]
    assert {tuple(c) for c in np.unique(visible, axis=0)} == {(0, 0, 255), (0, 255, 0), (0, 128, 128)}


def test_palette_reports_colours_by_share():
    image = Image.new("RGB", (100, 10), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 30, 10))
    image.paste((255, 255, 255), (30, 0, 40, 10))
    result = ml.palette(image, colors=3)
    assert result == {
        "colors": [
            {"color": "#ff0000", "share": 0.6, "pixels": 600},
            {"color": "#0000ff", "share": 0.3, "pixels": 300},
            {"color": "#ffffff", "share": 0.1, "pixels": 100},
        ],
        "pixels": 1000,
    }


def test_palette_of_a_photo():
    image = scene((200, 150), seed=8)
    image.putalpha(alpha_ramp((200, 150)))
    result = ml.palette(image, colors=5)
    visible = int((np.asarray(image.getchannel("A")) > 0).sum())
    assert result["pixels"] == visible == sum(c["pixels"] for c in result["colors"])
    shares = [c["share"] for c in result["colors"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1, abs=1e-3)
    assert result == ml.palette(image, colors=5)


def test_palette_of_a_grey_image_and_of_nothing_visible():
    assert ml.palette(Image.new("L", (4, 4), 17), colors=2) == {
        "colors": [{"color": "#111111", "share": 1.0, "pixels": 16}], "pixels": 16}
    assert ml.palette(Image.new("LA", (4, 4), (17, 0)))["pixels"] == 0
