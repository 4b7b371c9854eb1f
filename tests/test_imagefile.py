"""Image I/O: every kind of upload decodes upright, in sRGB and one of four modes; output carries no metadata."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.images import SAMPLES, encode, linear_srgb_profile, scene, upright_marker
from worker import imagefile


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write every sample file once."""
    directory = tmp_path_factory.mktemp("samples")
    paths = {}
    for name, (build, _) in SAMPLES.items():
        paths[name] = directory / name
        paths[name].write_bytes(build())
    return paths


@pytest.mark.parametrize("name", SAMPLES)
def test_every_input_loads_in_one_of_the_four_modes(samples, name):
    image = imagefile.load(samples[name])
    assert image.mode == SAMPLES[name][1]
    assert image.info == {}


def test_transparency_becomes_alpha(samples):
    for name in ("p-transparent.gif", "p-transparent.png"):
        alpha = np.asarray(imagefile.load(samples[name]).getchannel("A"))
        assert (alpha[:16, :24] == 0).all() and (alpha[16:, :] == 255).all()
    rgb = imagefile.load(samples["rgb-transparent.png"])
    assert rgb.getpixel((0, 0)) == (0, 0, 0, 0)
    grey = np.asarray(imagefile.load(samples["l-transparent.png"]))
    assert ((grey[..., 1] == 0) == (grey[..., 0] == 0)).all()  # the transparent grey level, and only it


def test_sixteen_bit_grey_scales_to_eight_bits(samples):
    for name in ("i16.png", "i16.tiff"):
        values = np.asarray(imagefile.load(samples[name])).ravel()
        expected = np.rint(np.linspace(0, 65535, values.size).astype(np.uint16) / 65535 * 255)
        assert np.array_equal(values, expected)


def test_one_bit_is_black_and_white(samples):
    for name in ("1bit.png", "1bit.tiff"):
        assert set(np.unique(np.asarray(imagefile.load(samples[name])))) <= {0, 255}


def test_cmyk_becomes_rgb(samples):
    red = np.asarray(imagefile.load(samples["cmyk.jpg"]), dtype=int)
    assert np.abs(red - [255, 0, 0]).max() <= 2
    direct = np.asarray(scene().convert("CMYK").convert("RGB"), dtype=int)
    assert np.array_equal(np.asarray(imagefile.load(samples["cmyk.tiff"])), direct)


@pytest.mark.parametrize("name", ["animated.gif", "animated.webp", "animated.png"])
def test_animations_give_their_first_frame(samples, name):
    with Image.open(samples[name]) as original:
        assert getattr(original, "n_frames", 1) == 3
    image = imagefile.load(samples[name])
    assert image.size == (48, 32)
    assert np.array_equal(np.unique(np.asarray(image).reshape(-1, 3), axis=0), [[255, 0, 0]])


def test_exif_orientation_is_applied_before_anything_else(samples):
    image = imagefile.load(samples["exif-rotated.jpg"])
    assert image.size == upright_marker().size
    assert min(image.getpixel((2, 2))) > 220 and max(image.getpixel((28, 44))) < 100


def test_exif_orientation_is_applied_to_a_draft_decode(tmp_path):
    big = upright_marker().resize((320, 480))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    path.write_bytes(encode(big.rotate(90, expand=True), "JPEG", quality=95, exif=exif.tobytes()))
    image = imagefile.load(path, shrink=lambda size: (size[0] // 4, size[1] // 4))
    assert image.size == (80, 120)  # decoded at a quarter, then turned upright
    assert min(image.getpixel((5, 5))) > 200


def test_icc_profile_colours_are_converted_to_srgb(samples):
    # 128 in linear light is sRGB's 188; a loader that ignored the profile would keep 128
    values = np.asarray(imagefile.load(samples["icc.png"]))
    assert np.abs(values.astype(int) - 188).max() <= 1


def test_unusable_icc_profile_keeps_the_colours(tmp_path):
    path = tmp_path / "bad-icc.png"
    path.write_bytes(encode(Image.new("RGB", (8, 8), (10, 20, 30)), "PNG", icc_profile=b"not a profile" * 20))
    assert imagefile.load(path).getpixel((0, 0)) == (10, 20, 30)


def test_jpeg_draft_decodes_at_the_smallest_sufficient_scale(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(encode(scene((800, 600)), "JPEG"))
    assert imagefile.load(path, shrink=lambda size: (200, 150)).size == (200, 150)
    assert imagefile.load(path, shrink=lambda size: (201, 150)).size == (400, 300)
    assert imagefile.load(path).size == (800, 600)


def metadata_of(data: bytes) -> dict:
    """Return the metadata Pillow finds in an encoded image."""
    with Image.open(io.BytesIO(data)) as image:
        found = {k: v for k, v in image.info.items() if k not in ("dpi", "jfif", "jfif_version", "jfif_unit",
                                                                   "jfif_density", "loop", "background")}
        return {**found, "exif": dict(image.getexif())}


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_carries_no_metadata(tmp_path, fmt):
    source = tmp_path / "tagged.jpg"
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0112] = 3
    source.write_bytes(encode(scene(), "JPEG", exif=exif.tobytes(), icc_profile=linear_srgb_profile(),
                              comment=b"a comment", xmp=b"<x:xmpmeta/>"))
    assert metadata_of(source.read_bytes())["exif"]
    image = imagefile.load(source)
    image.info["icc_profile"] = linear_srgb_profile()  # as if an op had added some
    image.info["comment"] = b"added"
    out = tmp_path / f"out.{fmt}"
    imagefile.save(image, out, fmt, 90 if fmt != "png" else None)
    found = metadata_of(out.read_bytes())
    assert found == {"exif": {}}, found


@pytest.mark.parametrize(("fmt", "mode"), [("png", "RGBA"), ("webp", "RGBA"), ("png", "LA"), ("webp", "LA")])
def test_transparency_is_kept_where_the_format_allows(tmp_path, fmt, mode):
    image = scene().convert(mode)
    image.putalpha(Image.linear_gradient("L").resize(image.size))
    out = tmp_path / f"out.{fmt}"
    imagefile.save(image, out, fmt, 100 if fmt == "webp" else None)
    with Image.open(out) as saved:
        assert "A" in saved.getbands()
        assert np.abs(np.asarray(saved.getchannel("A"), int) - np.asarray(image.getchannel("A"), int)).max() <= 1


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_jpeg_flattens_transparency_onto_white(tmp_path, mode):
    image = Image.new(mode, (16, 16), (0,) * len(mode))  # fully transparent black
    out = tmp_path / "out.jpeg"
    imagefile.save(image, out, "jpeg", 95)
    with Image.open(out) as saved:
        assert saved.mode == mode[:-1]
        assert np.asarray(saved).min() >= 250


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_same_image_same_bytes(tmp_path, fmt):
    image = scene((120, 80))
    quality = None if fmt == "png" else 80
    imagefile.save(image, tmp_path / "a", fmt, quality)
    imagefile.save(image.copy(), tmp_path / "b", fmt, quality)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
