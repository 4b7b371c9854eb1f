"""Geometry: resize and friends."""

from __future__ import annotations

import math

from PIL import Image, ImageOps

from worker.ops.registry import Size, implements

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_size(source: Size, width: int | None, height: int | None, fit: str) -> Size:
    """Return the output size of a resize of `source` (for cover: the box it fills)."""
    src_w, src_h = source
    if fit in ("fill", "cover") and width and height:
        return width, height
    scales = [s for s in (width and width / src_w, height and height / src_h) if s]
    scale = min(scales)
    if fit == "inside":
        scale = min(scale, 1.0)
    return max(1, round(src_w * scale)), max(1, round(src_h * scale))


def resize_draft(source: Size, *, width: int | None = None, height: int | None = None, fit: str = "inside",
                 **_: object) -> Size:
    """Return the smallest decode size from which this resize loses nothing."""
    out_w, out_h = resize_size(source, width, height, fit)
    if fit == "cover":
        scale = max(out_w / source[0], out_h / source[1])
        return math.ceil(source[0] * scale), math.ceil(source[1] * scale)
    return out_w, out_h


@implements("resize", draft=resize_draft)
def resize(
    image: Image.Image, *, width: int | None = None, height: int | None = None, fit: str = "inside",
    filter: str = "lanczos",
) -> Image.Image:
    """Resize to a width and/or height, keeping the aspect ratio as `fit` says."""
    if width is None and height is None:
        raise ValueError("give width, height or both")
    size = resize_size(image.size, width, height, fit)
    if fit == "cover":
        return ImageOps.fit(image, size, method=FILTERS[filter])
    return image.resize(size, FILTERS[filter])
