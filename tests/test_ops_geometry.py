"""Geometry ops: sizes, boxes, fills and the JPEG draft sizes they ask for."""

from __future__ import annotations

import multiprocessing
import os
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.images import scene
from tests.services import wait_until
from worker import pipeline
from worker.ops import geometry, pixels


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


def modes(size: tuple[int, int]) -> dict[str, Image.Image]:
    """Return a photo-like image of `size` in each of the four modes ops see, alpha a ramp."""
    rgb, alpha = scene(size), Image.linear_gradient("L").resize(size)
    rgba, la = rgb.copy(), rgb.convert("L")
    rgba.putalpha(alpha)
    la.putalpha(alpha)
    return {"L": rgb.convert("L"), "LA": la, "RGB": rgb, "RGBA": rgba}


SMALL = modes((61, 47))
#: (output size, source box) pairs: shrinking, enlarging, one axis, 1-pixel sides, odd boxes, and shapes that
#: make Pillow resample vertically first (the height shrinking by over twice as much as the width).
RESAMPLES = [
    ((30, 23), None), ((7, 5), None), ((1, 1), None), ((1, 47), None), ((61, 1), None), ((1, 9), None),
    ((122, 94), None), ((200, 13), None), ((61, 20), None), ((33, 47), None), ((60, 10), None), ((59, 3), None),
    ((40, 40), (10.5, 0.0, 57.25, 47.0)), ((25, 25), (0.0, 3.75, 61.0, 41.5)), ((61, 47), (0.5, 0.5, 60.5, 46.5)),
    ((20, 30), (3.0, 2.0, 23.0, 32.0)), ((17, 47), (5.0, 0.0, 22.0, 47.0)), ((61, 30), (0.0, 8.5, 61.0, 38.5)),
    ((50, 7), (1.3, 0.0, 60.9, 46.2)), ((3, 80), (29.9, 0.1, 31.1, 46.9)),
]


@pytest.fixture(params=["few bands", "many bands"])
def bands(request, monkeypatch):
    """Resample in bands of a quarter megapixel (one or two here), and again in bands of a few rows or columns."""
    if request.param == "many bands":
        monkeypatch.setattr(pixels, "BAND_PIXELS", 150)


@pytest.mark.parametrize("mode", SMALL)
@pytest.mark.parametrize("filter", geometry.FILTERS)
@pytest.mark.parametrize("threads", [2, 3])
def test_resample_in_bands_is_pillows_resize_byte_for_byte(bands, mode, filter, threads):
    image = SMALL[mode]
    for size, box in RESAMPLES:
        expected = image.resize(size, geometry.FILTERS[filter], box)
        out = geometry.resample(image, size, geometry.FILTERS[filter], box, threads=threads)
        assert (out.mode, out.size) == (expected.mode, expected.size)
        assert out.tobytes() == expected.tobytes(), (size, box)


@pytest.fixture
def threaded(monkeypatch):
    """Resample on three threads whatever the machine has, so the banded code runs."""
    monkeypatch.setattr(geometry, "thread_count", lambda: 3)


@pytest.fixture(scope="module")
def large() -> dict[str, Image.Image]:
    """Return images big enough that resizing them is split across threads."""
    return modes((751, 563))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("filter", geometry.FILTERS)
def test_resize_is_pillows_resize_byte_for_byte(threaded, bands, large, mode, filter):
    image, method = large[mode], geometry.FILTERS[filter]
    cases = [
        ({"width": 375}, image.resize((375, 281), method)),
        ({"width": 1001, "fit": "contain"}, image.resize((1001, 750), method)),
        ({"width": 333, "height": 97, "fit": "fill"}, image.resize((333, 97), method)),
        ({"width": 300, "height": 300, "fit": "cover"}, ImageOps.fit(image, (300, 300), method)),
        ({"width": 211, "height": 400, "fit": "cover"}, ImageOps.fit(image, (211, 400), method)),
        ({"width": 1000, "height": 301, "fit": "cover"}, ImageOps.fit(image, (1000, 301), method)),
    ]
    for params, expected in cases:
        out = geometry.resize(image, filter=filter, **params)
        assert out.mode == expected.mode and out.tobytes() == expected.tobytes(), params


@pytest.mark.parametrize("size", [(256, 256), (300, 200), (120, 120)])
def test_thumbnail_is_pillows_resize_with_a_reducing_gap(threaded, large, size):
    for image in large.values():
        fit = geometry.resize_size(image.size, *size, "inside")
        expected = image.resize(fit, Image.Resampling.BICUBIC, reducing_gap=geometry.THUMBNAIL_GAP)
        assert geometry.thumbnail(image, width=size[0], height=size[1]).tobytes() == expected.tobytes()


def resize_in_child(image: Image.Image, result) -> None:
    """Resize on the pool in a forked child and report whether it matched Pillow."""
    out = geometry.resample(image, (301, 200), Image.Resampling.LANCZOS, threads=3)
    result.put(out.tobytes() == image.resize((301, 200), Image.Resampling.LANCZOS).tobytes())


def test_a_forked_child_resamples_on_threads_of_its_own(large):
    geometry.resample(large["RGB"], (301, 200), Image.Resampling.LANCZOS, threads=3)  # the parent's pool is up
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+ warns about forking with threads
        child = context.Process(target=resize_in_child, args=(large["RGB"], result))
        child.start()
    child.join(60)
    if child.is_alive():  # stuck waiting on the parent's threads, which a fork does not copy
        child.kill()
    assert child.exitcode == 0 and result.get(timeout=1)


def spin(stop) -> None:
    """Keep one CPU busy until `stop` is set."""
    while not stop.is_set():
        pass


def test_resampling_takes_one_thread_when_every_cpu_is_busy():
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    spinners = [context.Process(target=spin, args=(stop,)) for _ in range(len(os.sched_getaffinity(0)))]
    for spinner in spinners:
        spinner.start()
    try:
        # the spinners are always ready to run, so the kernel counts them whenever it is asked
        assert wait_until(lambda: geometry.thread_count() == 1, timeout=30, what="a thread count of 1")
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join(10)


@pytest.mark.parametrize(("loadavg", "others"), [("0.52 0.58 0.59 3/712 4071", 2), ("0.0 0.0 0.0 1/80 9", 0)])
def test_the_threads_running_elsewhere_are_read_from_the_kernels_count(tmp_path, loadavg, others):
    path = tmp_path / "loadavg"
    path.write_text(loadavg + "\n")
    assert geometry.running_elsewhere(path) == others


def test_without_the_kernels_count_resampling_assumes_idle_cpus(tmp_path):
    assert geometry.running_elsewhere(tmp_path / "missing") == 0


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


def test_rotate_expands_and_fills_corners_white_by_default():
    turned = geometry.rotate(Image.new("RGB", (100, 50), (200, 10, 10)), angle=30)
    assert turned.mode == "RGB"  # no alpha channel: an opaque fill keeps the image in its mode
    assert turned.size == (112, 94)  # 100 cos 30 + 50 sin 30, 100 sin 30 + 50 cos 30, rounded up
    assert turned.getpixel((0, 0)) == (255, 255, 255) and turned.getpixel((56, 46)) == (200, 10, 10)
    assert geometry.rotate(Image.new("L", (40, 30), 7), angle=30).mode == "L"


def test_rotate_fills_corners_by_default_with_transparency_or_white_as_the_image_allows():
    turned = geometry.rotate(Image.new("RGBA", (100, 50), (200, 10, 10, 128)), angle=30)
    assert turned.mode == "RGBA" and turned.getpixel((0, 0))[3] == 0
    assert geometry.rotate(Image.new("LA", (40, 30), (7, 9)), angle=30).getpixel((0, 0))[1] == 0
    photo = geometry.rotate(Image.new("RGB", (100, 50), (200, 10, 10)), angle=30)
    assert photo.mode == "RGB" and photo.getpixel((0, 0)) == (255, 255, 255)


def test_rotate_keeps_alpha_and_fills_its_corners_with_an_opaque_fill_when_asked():
    turned = geometry.rotate(Image.new("RGBA", (100, 50), (200, 10, 10, 128)), angle=30, fill="#ffffff")
    assert turned.mode == "RGBA" and turned.getpixel((0, 0)) == (255, 255, 255, 255)


def test_rotate_with_a_transparent_fill_adds_alpha():
    turned = geometry.rotate(Image.new("RGB", (100, 50), (200, 10, 10)), angle=30, fill="#00000000")
    assert turned.mode == "RGBA"
    assert turned.getpixel((0, 0))[3] == 0 and turned.getpixel((56, 46)) == (200, 10, 10, 255)


def test_rotate_without_expand_keeps_the_size():
    assert geometry.rotate(scene((100, 50)), angle=30, expand=False).size == (100, 50)
    sideways = geometry.rotate(scene((100, 50)), angle=90, expand=False)  # uncovered sides
    assert sideways.mode == "RGB" and sideways.getpixel((0, 0)) == (255, 255, 255)
    assert geometry.rotate(scene((100, 50)), angle=90, expand=False, fill="#00000000").mode == "RGBA"


def test_rotate_fills_with_the_colour_asked_for():
    opaque = geometry.rotate(Image.new("L", (40, 40), 100), angle=45, fill="#ff8800")
    assert opaque.mode == "RGB" and opaque.getpixel((0, 0)) == (255, 136, 0)
    translucent = geometry.rotate(Image.new("RGBA", (40, 40), (0, 0, 255, 255)), angle=45, fill="#ff880080")
    *colour, alpha = translucent.getpixel((0, 0))
    assert alpha == 128  # Pillow resamples premultiplied: at alpha 128 a colour is only good to 1 level
    assert np.abs(np.subtract(colour, (255, 136, 0))).max() <= 1
    grey = geometry.rotate(Image.new("L", (40, 40), 100), angle=45, fill="#808080")
    assert grey.mode == "L" and grey.getpixel((0, 0)) == 128


@pytest.mark.parametrize(("mode", "white"), [("RGB", (255, 255, 255)), ("L", 255)])
@pytest.mark.parametrize("filter", ["nearest", "bilinear", "bicubic"])
def test_rotate_without_alpha_is_pillows_rotate_with_a_fill_colour(mode, white, filter):
    image = scene((60, 40)).convert(mode)
    expected = image.rotate(33, geometry.FILTERS[filter], expand=True, fillcolor=white)
    assert np.array_equal(np.asarray(geometry.rotate(image, angle=33, filter=filter)), np.asarray(expected))


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_rotate_with_a_transparent_fill_is_pillows_rotate_of_the_image_with_alpha(mode):
    image = scene((60, 40)).convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((60, 40)))
    expected = image.convert("RGBA").rotate(33, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0, 0))
    turned = geometry.rotate(image, angle=33, fill="#00000000")
    assert np.array_equal(np.asarray(turned), np.asarray(expected))


def test_rotate_keeps_transparent_pixels_from_darkening_their_neighbours():
    image = Image.new("RGBA", (40, 40), (255, 255, 255, 0))
    image.paste((255, 255, 255, 255), (10, 10, 30, 30))
    turned = np.asarray(geometry.rotate(image, angle=20, fill="#00000000"))
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
    padded = geometry.pad(Image.new("L", (10, 10), 50), border=3, fill="#00000000")
    assert padded.mode == "LA" and padded.getpixel((0, 0)) == (0, 0) and padded.getpixel((5, 5)) == (50, 255)


def test_pad_by_default_keeps_the_mode_white_or_transparent():
    assert geometry.pad(Image.new("L", (10, 10), 50), border=3).getpixel((0, 0)) == 255
    assert geometry.pad(Image.new("RGBA", (10, 10), (1, 2, 3, 255)), border=3).getpixel((0, 0))[3] == 0


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
