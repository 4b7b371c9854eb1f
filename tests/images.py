"""Test images built in code: one file for every kind of input an upload can decode to."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from bench.images import photo

SIZE = (48, 32)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    """Return `image` encoded as `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def scene(size: tuple[int, int] = SIZE, seed: int = 0) -> Image.Image:
    """Return a small photo-like RGB image."""
    return photo(size, seed)


def alpha_ramp(size: tuple[int, int] = SIZE) -> Image.Image:
    """Return an alpha band from transparent on the left to opaque on the right, with a fully clear corner."""
    ramp = Image.linear_gradient("L").rotate(90).resize(size)
    ramp.paste(0, (0, 0, size[0] // 4, size[1] // 4))
    return ramp


def xyz(x: float, y: float, z: float) -> bytes:
    """Return an ICC XYZType tag."""
    return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in (x, y, z))


def linear_srgb_profile() -> bytes:
    """Return a minimal ICC v2 profile: sRGB primaries with a linear (gamma 1.0) tone curve."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    text = b"desc\0\0\0\0" + struct.pack(">I", 11) + b"linear RGB\0" + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    tags = [
        (b"desc", text), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)), (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
    header += b"".join(struct.pack(">i", round(v * 65536)) for v in (0.9642, 1.0, 0.8249))
    header += b"\0" * (128 - len(header))
    return header + table + data


def frames(colours: list[tuple[int, int, int]], size: tuple[int, int] = SIZE) -> list[Image.Image]:
    """Return solid RGB frames of the given colours."""
    return [Image.new("RGB", size, colour) for colour in colours]


def _animated(fmt: str, **options: Any) -> bytes:
    """Return a three-frame animation whose first frame is red."""
    first, *rest = frames([(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    return encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0, **options)


def _palette_with_transparency(fmt: str) -> bytes:
    """Return a palette image whose index 0 is transparent and used only in the top-left quarter."""
    quantized = scene().quantize(15)
    indices = np.asarray(quantized) + 1
    indices[: SIZE[1] // 2, : SIZE[0] // 2] = 0
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette([0, 0, 0, *(quantized.getpalette() or [])[: 15 * 3]])
    return encode(image, fmt, transparency=0)


def _exif_rotated() -> bytes:
    """Return a JPEG stored on its side with EXIF orientation 6 (turn 90 degrees clockwise to view)."""
    upright = upright_marker()
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(upright.rotate(90, expand=True), "JPEG", quality=95, exif=exif.tobytes())


def upright_marker() -> Image.Image:
    """Return a 32 x 48 grey image with a white block in its top-left corner."""
    image = Image.new("RGB", (32, 48), (60, 60, 60))
    image.paste((255, 255, 255), (0, 0, 12, 12))
    return image


def _sixteen_bit(fmt: str) -> bytes:
    """Return a 16-bit greyscale gradient from 0 to 65535."""
    ramp = np.linspace(0, 65535, SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]).astype(np.uint16)
    return encode(Image.fromarray(ramp), fmt)


def _with_alpha(mode: str) -> Image.Image:
    """Return the scene in `mode` with an alpha ramp."""
    image = scene().convert(mode)
    image.putalpha(alpha_ramp())
    return image


#: name -> (builder of the encoded file, the mode load() must give).
SAMPLES: dict[str, tuple[Callable[[], bytes], str]] = {
    "rgb.png": (lambda: encode(scene(), "PNG"), "RGB"),
    "rgb.jpg": (lambda: encode(scene(), "JPEG"), "RGB"),
    "rgba.png": (lambda: encode(_with_alpha("RGB"), "PNG"), "RGBA"),
    "l.png": (lambda: encode(scene().convert("L"), "PNG"), "L"),
    "la.png": (lambda: encode(_with_alpha("L"), "PNG"), "LA"),
    "p-transparent.gif": (lambda: _palette_with_transparency("GIF"), "RGBA"),
    "p-transparent.png": (lambda: _palette_with_transparency("PNG"), "RGBA"),
    "p.bmp": (lambda: encode(scene().quantize(16), "BMP"), "RGB"),
    "l-transparent.png": (lambda: encode(scene().convert("L"), "PNG", transparency=0), "LA"),
    "rgb-transparent.png": (lambda: encode(Image.new("RGB", SIZE, (0, 0, 0)), "PNG", transparency=(0, 0, 0)), "RGBA"),
    "1bit.png": (lambda: encode(scene().convert("1"), "PNG"), "L"),
    "1bit.tiff": (lambda: encode(scene().convert("1"), "TIFF", compression="group4"), "L"),
    "cmyk.jpg": (lambda: encode(Image.new("CMYK", SIZE, (0, 255, 255, 0)), "JPEG", quality=95), "RGB"),
    "cmyk.tiff": (lambda: encode(scene().convert("CMYK"), "TIFF"), "RGB"),
    "i16.png": (lambda: _sixteen_bit("PNG"), "L"),
    "i16.tiff": (lambda: _sixteen_bit("TIFF"), "L"),
    "animated.gif": (lambda: _animated("GIF"), "RGB"),
    "animated.webp": (lambda: _animated("WEBP", lossless=True), "RGB"),
    "animated.png": (lambda: _animated("PNG"), "RGB"),
    "exif-rotated.jpg": (_exif_rotated, "RGB"),
    "icc.png": (lambda: encode(Image.new("RGB", SIZE, (128, 128, 128)), "PNG", icc_profile=linear_srgb_profile()),
                "RGB"),
}
