"""Pixel access shared by the ops: colour and alpha apart, tone curves, and row bands for numpy.

Numpy work runs over bands of rows, so a 12-megapixel photo never needs a full-size
array (or its int16/float temporaries) next to the input and output images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

#: Pixels per band: a quarter megapixel keeps every temporary small and in cache (twice as fast as 1 MP).
BAND_PIXELS = 1 << 18
IDENTITY = list(range(256))


def band_rows(width: int) -> int:
    """Return how many rows of `width` pixels make one band."""
    return max(1, BAND_PIXELS // max(1, width))


def bands(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (top row, pixel array) for consecutive bands of rows of `image`."""
    rows = band_rows(image.width)
    for top in range(0, image.height, rows):
        bottom = min(top + rows, image.height)
        yield top, np.asarray(image.crop((0, top, image.width, bottom)))


def halo_bands(image: Image.Image, halo: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (top row, pixel array) by bands, each with `halo` more pixels all round, the border repeated."""
    rows = band_rows(image.width)
    for top in range(0, image.height, rows):
        bottom = min(top + rows, image.height)
        above, below = max(0, top - halo), min(image.height, bottom + halo)
        pixels = np.asarray(image.crop((0, above, image.width, below)))
        rim = [(halo - (top - above), halo - (below - bottom)), (halo, halo)] + [(0, 0)] * (pixels.ndim - 2)
        yield top, np.pad(pixels, rim, mode="edge")


def banded(image: Image.Image, apply: Callable[[Image.Image], Image.Image], margin: int) -> Image.Image:
    """Return apply(image) computed band by band, each with `margin` rows of context above and below.

    The result is the same as applying it to the whole image when `apply` reads no further
    than `margin` rows; only the input, the output and one band are in memory at a time.
    """
    rows = max(4 * band_rows(image.width), 8 * margin)
    if rows >= image.height:
        return apply(image)
    out = Image.new(image.mode, image.size)
    for top in range(0, image.height, rows):
        bottom = min(top + rows, image.height)
        above, below = max(0, top - margin), min(image.height, bottom + margin)
        done = apply(image.crop((0, above, image.width, below)))
        out.paste(done.crop((0, top - above, image.width, bottom - above)), (0, top))
    return out


def split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Return the colour part of `image` (L or RGB) and its alpha band, if it has one."""
    if image.mode == "RGBA":
        return image.convert("RGB"), image.getchannel("A")
    if image.mode == "LA":
        return image.convert("L"), image.getchannel("A")
    return image, None


def with_alpha(colour: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Put `alpha` back on a colour image (a no-op without alpha)."""
    if alpha is None:
        return colour
    colour = colour.convert("RGBA" if colour.mode == "RGB" else "LA")
    colour.putalpha(alpha)
    return colour


def colour_bands(image: Image.Image) -> int:
    """Return how many bands of `image` carry colour rather than alpha."""
    return len(image.getbands()) - ("A" in image.getbands())


def curve(image: Image.Image, lut: Sequence[float] | np.ndarray) -> Image.Image:
    """Apply one 256-entry tone curve to every colour band, leaving alpha as it is."""
    table = np.clip(np.rint(np.asarray(lut, dtype=np.float64)), 0, 255).astype(np.uint8).tolist()
    full = table * colour_bands(image) + (IDENTITY if "A" in image.getbands() else [])
    return image.point(full)


def colour_histogram(image: Image.Image) -> np.ndarray:
    """Return the 256-bin histogram of all colour bands together, counting only visible pixels."""
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    counts = np.asarray(image.histogram(mask=alpha), dtype=np.int64).reshape(-1, 256)
    return counts[: colour_bands(image)].sum(axis=0)
