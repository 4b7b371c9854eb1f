"""Geometry ops: sizes, boxes, fills and the JPEG draft sizes they ask for."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.images import scene
from worker import pipeline
from worker.ops import geometry


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 100}, (100, 75)),
        ({"height": 30}, (40, 30)),
        ({"width": 100, "height": 100}, (100, 75)),
        ({"width": 1000}, (400, 300)),  # inside never enlarges
        ({"width": 1000, "fit": "contain"}, (1000, 750)),
        ({"width": 100, "height": 100, "fit": "cover"}, (100, 100)),
        ({"width": 100, "height": 30, "fit": "fill"}, (100, 30)),
    ],
)
def test_resize_fits(params, size):
    assert geometry.resize(scene((400, 300)), **params).size == size


def test_resize_cover_crops_the_overflow_evenly():
    image = Image.new("L", (300, 100), 0)
    image.paste(255, (100, 0, 200, 100))  # a white middle third
    out = np.asarray(geometry.resize(image, width=50, height=50, fit="cover", filter="nearest"))
    assert (out == 255).all()


def test_thumbnail_fits_the_box_and_never_enlarges():
    assert geometry.thumbnail(scene((400, 300)), width=64, height=64).size == (64, 48)
    assert geometry.thumbnail(scene((40, 30))).size == (40, 30)


def test_thumbnail_is_close_to_a_fair_resize():
    image = scene((800, 600))
    fast = np.asarray(geometry.thumbnail(image, width=100, height=100), dtype=float)
    fair = np.asarray(image.resize((100, 75), Image.Resampling.BICUBIC), dtype=float)
    assert np.abs(fast - fair).mean() < 2.0


@pytest.mark.parametrize(
    ("params", "box"),
    [
        ({"x": 10, "y": 5, "width": 20, "height": 10}, (10, 5, 30, 15)),
        ({"x": 30}, (30, 0, 40, 30)),
        ({"x": 30, "y": 20, "width": 100, "height": 100}, (30, 20, 40, 30)),  # clipped to the image
        ({"aspect": 1.0}, (5, 0, 35, 30)),
        ({"aspect": 2.0}, (0, 5, 40, 25)),
        ({"aspect": 40 / 30}, (0, 0, 40, 30)),
    ],
)
def test_crop_boxes(params, box):
    image = scene((40, 30))
    assert np.array_equal(np.asarray(geometry.crop(image, **params)), np.asarray(image.crop(box)))


def test_crop_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match=r"outside the 40x30 image"):
        geometry.crop(scene((40, 30)), x=40)
    with pytest.raises(ValueError, match="not both"):
        geometry.crop(scene((40, 30)), x=1, aspect=1.0)


@pytest.mark.parametrize("angle", [90, 180, 270, -90, 360])
def test_quarter_turns_are_exact_and_need_no_fill(angle):
    image = scene((40, 30))
    turned = geometry.rotate(image, angle=angle)
    assert turned.mode == "RGB"
    assert np.array_equal(np.asarray(turned), np.asarray(image.rotate(angle, expand=True)))


def test_rotate_expands_and_fills_corners_transparent_by_default():
    turned = geometry.rotate(Image.new("RGB", (100, 50), (200, 10, 10)), angle=30)
    assert turned.mode == "RGBA"
    assert turned.size == (112, 94)  # 100 cos 30 + 50 sin 30, 100 sin 30 + 50 cos 30, rounded up
    assert turned.getpixel((0, 0))[3] == 0 and turned.getpixel((56, 46)) == (200, 10, 10, 255)


def test_rotate_without_expand_keeps_the_size():
    assert geometry.rotate(scene((100, 50)), angle=30, expand=False).size == (100, 50)
    assert geometry.rotate(scene((100, 50)), angle=90, expand=False).mode == "RGBA"  # uncovered sides


def test_rotate_fills_with_the_colour_asked_for():
    opaque = geometry.rotate(Image.new("L", (40, 40), 100), angle=45, fill="#ff8800")
    assert opaque.mode == "RGB" and opaque.getpixel((0, 0)) == (255, 136, 0)
    translucent = geometry.rotate(Image.new("RGBA", (40, 40), (0, 0, 255, 255)), angle=45, fill="#ff880080")
    *colour, alpha = translucent.getpixel((0, 0))
    assert alpha == 128  # Pillow resamples premultiplied: at alpha 128 a colour is only good to 1 level
    assert np.abs(np.subtract(colour, (255, 136, 0))).max() <= 1
    grey = geometry.rotate(Image.new("L", (40, 40), 100), angle=45, fill="#808080")
    assert grey.mode == "L" and grey.getpixel((0, 0)) == 128


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_rotate_is_pillows_rotate_of_the_image_with_alpha(mode):
    image = scene((60, 40)).convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((60, 40)))
    expected = image.convert("RGBA").rotate(33, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0, 0))
    assert np.array_equal(np.asarray(geometry.rotate(image, angle=33)), np.asarray(expected))


def test_rotate_keeps_transparent_pixels_from_darkening_their_neighbours():
    image = Image.new("RGBA", (40, 40), (255, 255, 255, 0))
    image.paste((255, 255, 255, 255), (10, 10, 30, 30))
    turned = np.asarray(geometry.rotate(image, angle=20))
    edge = turned[..., 3] > 0
    assert turned[edge][:, :3].min() >= 254  # premultiplied resampling: no dark fringe


def test_flip():
    image = scene((40, 30))
    horizontal = np.asarray(geometry.flip(image))
    assert np.array_equal(horizontal, np.asarray(image)[:, ::-1])
    assert np.array_equal(np.asarray(geometry.flip(image, direction="vertical")), np.asarray(image)[::-1])


def test_pad_centres_on_the_canvas_and_adds_the_border():
    image = Image.new("RGB", (40, 30), (1, 2, 3))
    padded = geometry.pad(image, width=50, height=50, border=2, fill="#ffffff")
    assert padded.size == (54, 54) and padded.mode == "RGB"
    values = np.asarray(padded)
    assert (values[12:42, 7:47] == [1, 2, 3]).all()
    assert (values[:12] == 255).all() and (values[42:] == 255).all()


def test_pad_with_a_transparent_fill_adds_alpha():
    padded = geometry.pad(Image.new("L", (10, 10), 50), border=3)
    assert padded.mode == "LA" and padded.getpixel((0, 0)) == (0, 0) and padded.getpixel((5, 5)) == (50, 255)


def test_pad_smaller_than_the_image_changes_nothing():
    image = scene((40, 30))
    assert np.array_equal(np.asarray(geometry.pad(image, width=10)), np.asarray(image))


def test_resize_and_thumbnail_tell_the_decoder_how_small_it_may_go():
    source = (4000, 3000)
    assert pipeline.shrink([{"op": "resize", "width": 1024, "height": None, "fit": "inside"}])(source) == (1024, 768)
    cover = pipeline.shrink([{"op": "resize", "width": 100, "height": 100, "fit": "cover"}])
    assert cover(source) == (134, 100)
    thumb = pipeline.shrink([{"op": "thumbnail", "width": 256, "height": 256, "filter": "bicubic"}])
    assert thumb(source) == (512, 384)
    assert pipeline.shrink([{"op": "crop", "x": 5}]) is None
