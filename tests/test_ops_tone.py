"""Tone and colour ops, against scikit-image and Pillow's ImageOps / ImageEnhance as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage import exposure

from tests.images import alpha_ramp, scene
from worker.ops import tone

PHOTO = scene((160, 120), seed=2)


def pixels(image: Image.Image) -> np.ndarray:
    """Return the image's values as ints."""
    return np.asarray(image, dtype=np.int64)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_equalize_matches_skimage(mode):
    image = PHOTO.convert(mode)
    values = np.asarray(image)
    # skimage pools all channels into one histogram, as equalize does (a 2-D view avoids its colour warning)
    expected = exposure.equalize_hist(values.reshape(values.shape[0], -1)).reshape(values.shape) * 255
    assert np.abs(pixels(tone.equalize(image)) - expected).max() <= 0.5  # equalize rounds to whole levels


def test_equalize_flattens_the_histogram():
    image = ImageEnhance.Contrast(PHOTO.convert("L")).enhance(0.3)  # squeezed into a narrow band
    cdf = np.cumsum(np.bincount(np.asarray(tone.equalize(image)).ravel(), minlength=256)) / (160 * 120)
    assert np.abs(cdf - np.arange(1, 257) / 256).max() < 0.06


@pytest.mark.parametrize("gamma", [0.3, 0.8, 1.0, 2.2])
def test_gamma_matches_skimage(gamma):
    values = np.asarray(PHOTO)
    assert np.abs(pixels(tone.gamma(PHOTO, gamma=gamma)) - exposure.adjust_gamma(values, gamma)).max() <= 1


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.3, 3.0])
def test_brightness_and_contrast_match_image_enhance(factor):
    # ImageEnhance blends with a degenerate image; a tone curve gives the same up to rounding
    brighter, stronger = ImageEnhance.Brightness(PHOTO).enhance(factor), ImageEnhance.Contrast(PHOTO).enhance(factor)
    assert np.abs(pixels(tone.brightness(PHOTO, factor=factor)) - brighter).max() <= 1
    assert np.abs(pixels(tone.contrast(PHOTO, factor=factor)) - stronger).max() <= 1


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_invert_posterize_autocontrast_match_image_ops(mode):
    image = PHOTO.convert(mode)
    assert np.array_equal(pixels(tone.invert(image)), pixels(ImageOps.invert(image)))
    assert np.array_equal(pixels(tone.posterize(image, bits=3)), pixels(ImageOps.posterize(image, 3)))
    for cutoff in (0, 2.5):
        expected = ImageOps.autocontrast(image, cutoff=cutoff)
        assert np.array_equal(pixels(tone.autocontrast(image, cutoff=cutoff)), pixels(expected))


def test_grayscale_is_luma():
    assert np.array_equal(pixels(tone.grayscale(PHOTO)), pixels(PHOTO.convert("L")))


def test_sepia():
    assert tone.sepia(Image.new("RGB", (1, 1), "white")).getpixel((0, 0)) == (255, 255, 239)
    assert tone.sepia(Image.new("RGB", (1, 1), (100, 50, 20))).getpixel((0, 0)) == (82, 73, 57)
    assert np.array_equal(pixels(tone.sepia(PHOTO, amount=0)), pixels(PHOTO))
    assert tone.sepia(Image.new("L", (1, 1), 100)).mode == "RGB"


@pytest.mark.parametrize(
    ("name", "params"),
    [("grayscale", {}), ("invert", {}), ("autocontrast", {"cutoff": 1}), ("equalize", {}), ("brightness", {}),
     ("contrast", {}), ("gamma", {}), ("posterize", {}), ("sepia", {})],
)
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_tone_ops_leave_alpha_alone(name, params, mode):
    image = PHOTO.convert(mode)
    image.putalpha(alpha_ramp(PHOTO.size))
    out = getattr(tone, name)(image, **params)
    assert out.mode in ("LA", "RGBA")
    assert np.array_equal(pixels(out.getchannel("A")), pixels(image.getchannel("A")))


def test_transparent_pixels_do_not_count_towards_the_curves():
    image = PHOTO.convert("L")
    image.putalpha(255)
    hidden = image.copy()
    hidden.paste((0, 0), (0, 0, 80, 120))  # black, but transparent: equalize and autocontrast must not see it
    for op in (tone.equalize, tone.autocontrast):
        visible = pixels(op(hidden))[:, 80:]
        assert np.array_equal(visible, pixels(op(image.crop((80, 0, 160, 120)))))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: tone.autocontrast(PHOTO, cutoff=50), "cutoff"),
        (lambda: tone.brightness(PHOTO, factor=-1), "factor"),
        (lambda: tone.gamma(PHOTO, gamma=0), "gamma must be positive"),
        (lambda: tone.posterize(PHOTO, bits=9), "bits"),
        (lambda: tone.sepia(PHOTO, amount=2), "amount"),
    ],
)
def test_bad_arguments_are_value_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()
