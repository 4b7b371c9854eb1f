"""Filters against scipy.ndimage and Pillow's own filters as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage

from tests.images import alpha_ramp, scene
from worker.ops import filters, pixels

PHOTO = scene((203, 151), seed=4)  # odd sizes, so bands and borders do not line up by luck


@pytest.fixture(autouse=True, params=["one band", "many bands"])
def bands(request, monkeypatch):
    """Run each test on whole images and again with bands of a few rows, so every seam is checked."""
    if request.param == "many bands":
        monkeypatch.setattr(pixels, "BAND_PIXELS", 600)


def values(image: Image.Image) -> np.ndarray:
    """Return the image's values as floats."""
    return np.asarray(image, dtype=np.float64)


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("radius", [0.5, 2, 7.5])
def test_blur_is_pillows_gaussian_blur(mode, radius):
    image = PHOTO.convert(mode)
    expected = image.filter(ImageFilter.GaussianBlur(radius))
    assert np.array_equal(values(filters.blur(image, radius=radius)), values(expected))


@pytest.mark.parametrize("radius", [1, 2, 5, 10])
def test_blur_is_close_to_a_true_gaussian(radius):
    # Pillow approximates the Gaussian by three box blurs; against scipy's exact kernel (same sigma,
    # borders repeated) the mean difference stays under 1 level and 99% of pixels within 2.5
    gray = PHOTO.convert("L")
    exact = ndimage.gaussian_filter(values(gray), radius, mode="nearest")
    diff = np.abs(values(filters.blur(gray, radius=radius)) - exact)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 2.5
    step = np.zeros((8, 400), np.uint8)
    step[:, 200:] = 255
    profile = np.diff(values(filters.blur(Image.fromarray(step), radius=radius))[4])
    weights = profile / profile.sum()
    mean = (weights * np.arange(weights.size)).sum()
    sigma = np.sqrt((weights * (np.arange(weights.size) - mean) ** 2).sum())
    assert sigma == pytest.approx(radius, rel=0.02)  # the edge spreads by the standard deviation asked for


def test_blur_zero_changes_nothing():
    assert np.array_equal(values(filters.blur(PHOTO, radius=0)), values(PHOTO))


def test_blur_does_not_darken_edges_of_transparent_areas():
    image = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (20, 20, 40, 40))
    out = np.asarray(filters.blur(image, radius=3))
    shown = out[..., 3] >= 8  # below that, 8-bit premultiplied colour is too coarse to judge
    assert out[shown][:, :3].min() >= 240
    assert 0 < out[18, 30, 3] < out[21, 30, 3] < 255 and out[0, 0, 3] == 0  # the outline itself is blurred
    direct = np.asarray(image.filter(ImageFilter.GaussianBlur(3)))
    assert direct[direct[..., 3] >= 8][:, :3].min() < 200  # what blurring straight alpha would have done


@pytest.mark.parametrize(("radius", "amount", "threshold"), [(2, 1.5, 3), (1, 0.8, 0), (4, 2.5, 10)])
def test_sharpen_is_an_unsharp_mask(radius, amount, threshold):
    # out = x + amount * (x - blur(x)) where |x - blur(x)| > threshold, over Pillow's Gaussian blur
    x = values(PHOTO)
    diff = x - values(PHOTO.filter(ImageFilter.GaussianBlur(radius)))
    expected = np.where(np.abs(diff) > threshold, np.clip(np.rint(x + amount * diff), 0, 255), x)
    out = values(filters.sharpen(PHOTO, radius=radius, amount=amount, threshold=threshold))
    assert np.abs(out - expected).max() <= 1  # Pillow rounds in fixed point


def test_sharpen_leaves_alpha_alone():
    image = PHOTO.convert("RGBA")
    image.putalpha(alpha_ramp(PHOTO.size))
    assert np.array_equal(values(filters.sharpen(image).getchannel("A")), values(image.getchannel("A")))


def scipy_sobel(gray: np.ndarray) -> np.ndarray:
    """Return the Sobel gradient magnitude as scipy computes it (borders reflected)."""
    return np.hypot(ndimage.sobel(gray, axis=0), ndimage.sobel(gray, axis=1))


def test_sobel_magnitude_matches_scipy():
    gray = PHOTO.convert("L")
    ours = np.concatenate([band for _, band in filters.sobel_bands(gray)])
    assert np.abs(ours - scipy_sobel(values(gray))).max() < 1e-3  # float32 square root of exact integers


def test_edges_image_is_scipy_sobel_scaled_to_a_full_step():
    gray = PHOTO.convert("L")
    expected = np.clip(scipy_sobel(values(gray)) / 4, 0, 255)
    assert np.abs(values(filters.edges(PHOTO)) - expected).max() <= 0.5 + 1e-3
    normalized = values(filters.edges(PHOTO, normalize=True))
    reference = scipy_sobel(values(gray))
    assert normalized.max() == 255
    assert np.abs(normalized - reference * 255 / reference.max()).max() <= 0.5 + 1e-3


def test_edges_of_a_step_and_of_a_flat_image():
    step = Image.new("L", (20, 10), 0)
    step.paste(255, (10, 0, 20, 10))
    out = values(filters.edges(step))
    assert (out[:, 9:11] == 255).all() and (out[:, :8] == 0).all()
    assert values(filters.edges(Image.new("RGB", (9, 9), "red"), normalize=True)).max() == 0


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_denoise_matches_scipy_and_pillow_medians(mode):
    image = PHOTO.convert(mode)
    array = np.asarray(image)
    size = (3, 3) + (1,) * (array.ndim - 2)
    out = np.asarray(filters.denoise(image))
    assert np.array_equal(out, ndimage.median_filter(array, size=size, mode="nearest"))
    assert np.array_equal(out, np.asarray(image.filter(ImageFilter.MedianFilter(3))))


def test_larger_denoise_windows_match_scipy():
    array = np.asarray(PHOTO.crop((0, 0, 60, 40)))
    out = np.asarray(filters.denoise(PHOTO.crop((0, 0, 60, 40)), size=5))
    assert np.array_equal(out, ndimage.median_filter(array, size=(5, 5, 1), mode="nearest"))


def test_denoise_removes_salt_and_pepper():
    clean = PHOTO.convert("L").filter(ImageFilter.GaussianBlur(3))
    noisy = np.array(clean)
    rng = np.random.default_rng(0)
    spots = rng.random(noisy.shape) < 0.03
    noisy[spots] = rng.choice([0, 255], size=int(spots.sum()))
    restored = values(filters.denoise(Image.fromarray(noisy)))
    assert np.abs(restored - values(clean)).mean() < np.abs(noisy - values(clean)).mean() / 5


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: filters.blur(PHOTO, radius=-1), "radius"),
        (lambda: filters.sharpen(PHOTO, threshold=300), "threshold"),
        (lambda: filters.denoise(PHOTO, size=4), "odd"),
    ],
)
def test_bad_arguments_are_value_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()
