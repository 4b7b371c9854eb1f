"""Image I/O, kept out of the ops: decode, orient, normalise modes, encode, atomic write."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from imgjobs.jobs import DECODE_ERRORS as PILLOW_DECODE_ERRORS
from imgjobs.jobs import INPUT_FORMATS

#: The modes every op works in; everything else is converted on load.
MODES = ("L", "LA", "RGB", "RGBA")
#: More than 8 bits per value, always greyscale in Pillow: scaled down to L.
DEEP = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ORIENTATION = 0x0112
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
Size = tuple[int, int]
#: Fixed encoder settings, so the same job always gives the same bytes.
ENCODER_OPTIONS: dict[str, dict[str, object]] = {
    "png": {"compress_level": 6},
    "jpeg": {"optimize": True, "subsampling": "4:2:0"},
    "webp": {"method": 4},
}
DECODE_ERRORS = (*PILLOW_DECODE_ERRORS, Image.DecompressionBombError)


class ImageError(ValueError):
    """The input cannot be decoded; retrying will not help."""


def load(path: Path, shrink: Callable[[Size], Size] | None = None) -> Image.Image:
    """Decode the first frame at `path`, upright, in sRGB and one of MODES, without metadata.

    `shrink` maps the upright size to the smallest size the first step needs; a
    JPEG is then decoded at a reduced scale that is still at least that big.
    Animated GIF, WebP and PNG files give their first frame, as a still image would.
    """
    try:
        with Image.open(path, formats=INPUT_FORMATS) as image:
            if shrink and image.format in ("JPEG", "MPO"):
                turned = image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
                want = shrink(image.size[::-1] if turned else image.size)
                image.draft(None, want[::-1] if turned else want)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return normalise(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):  # over MAX_PIXELS (Pillow's limit)
        raise ImageError(f"the image has more than the limit of {Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except DECODE_ERRORS as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from None


def normalise(image: Image.Image) -> Image.Image:
    """Return `image` in sRGB and one of MODES, keeping transparency, with its metadata dropped."""
    icc = image.info.pop("icc_profile", None)
    if image.mode in DEEP:
        image = _eight_bit(image)
    elif image.mode != "CMYK" and (image.mode not in MODES or "transparency" in image.info):
        image = image.convert(_mode_for(image))  # palette, 1-bit, a transparent colour: to L, LA, RGB or RGBA
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
        image = _to_srgb(image, icc)
    if image.mode not in MODES:
        image = image.convert("RGB")  # CMYK without a usable profile
    image.info = {}  # nothing of the input's metadata may reach the output
    return image


def _mode_for(image: Image.Image) -> str:
    """Return the one of MODES that holds `image` without losing colour or transparency."""
    alpha = "transparency" in image.info or any(band in ("A", "a") for band in image.getbands())
    if image.mode in ("1", "L", "LA", "La"):
        return "LA" if alpha else "L"
    return "RGBA" if alpha else "RGB"


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Convert colours from the embedded profile to sRGB; keep them as they are if it is unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source, SRGB, outputMode=mode) or image
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image


def _eight_bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit or float greyscale down to 8 bits."""
    data = np.asarray(image)
    if image.mode.startswith("I;16"):
        scaled = (data.astype(np.uint32) * 255 + 32767) // 65535  # exact rounding of v * 255 / 65535
        return Image.fromarray(scaled.astype(np.uint8))
    values = data.astype(np.float64)
    top = values.max(initial=0)
    if image.mode == "F" and top <= 1.0:
        values = values * 255.0
    elif top > 255:
        values = values * (255.0 / 65535.0)  # wider than 8 bits: read as 16-bit
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def storable(image: Image.Image, fmt: str) -> Image.Image:
    """Return `image` in a mode `fmt` can store (JPEG has no alpha: flatten onto white)."""
    if fmt == "jpeg" and image.mode in ("RGBA", "LA"):
        base = Image.new("RGB" if image.mode == "RGBA" else "L", image.size, "white")
        base.paste(image, mask=image.getchannel("A"))
        return base
    return image


def save(image: Image.Image, path: Path, fmt: str, quality: int | None) -> int:
    """Write `image` to `path` atomically (temp file, then rename); return its size in bytes.

    Encoder settings are fixed, so the same image always gives the same bytes, and no
    metadata (EXIF, ICC, XMP, comments, text) is written.
    """
    image = storable(image, fmt)
    if image.info:  # load() drops the input's metadata; never write what an op may have added
        image = image.copy()
        image.info.clear()
    options: dict[str, object] = dict(ENCODER_OPTIONS[fmt])
    if quality is not None:
        options["quality"] = quality
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            image.save(out, format=fmt.upper(), **options)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path.stat().st_size
