"""Geometry: resize, thumbnail, crop, rotate, flip and pad."""

from __future__ import annotations

import math

from PIL import Image, ImageColor, ImageOps

from worker.ops.registry import Size, implements

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
#: A thumbnail reduces by whole factors until within this factor of its size, then resamples (as Pillow's does).
THUMBNAIL_GAP = 2.0
PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
FLIPS = {"horizontal": Image.Transpose.FLIP_LEFT_RIGHT, "vertical": Image.Transpose.FLIP_TOP_BOTTOM}


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


def thumbnail_draft(source: Size, *, width: int = 256, height: int = 256, **_: object) -> Size:
    """Return the decode size a thumbnail needs: its gap times its size (never more than the source)."""
    out_w, out_h = resize_size(source, width, height, "inside")
    return min(source[0], math.ceil(out_w * THUMBNAIL_GAP)), min(source[1], math.ceil(out_h * THUMBNAIL_GAP))


@implements("thumbnail", draft=thumbnail_draft)
def thumbnail(image: Image.Image, *, width: int = 256, height: int = 256, filter: str = "bicubic") -> Image.Image:
    """Shrink to fit within width x height, never enlarging, reducing by whole factors first."""
    size = resize_size(image.size, width, height, "inside")
    if size == image.size:
        return image.copy()
    return image.resize(size, FILTERS[filter], reducing_gap=THUMBNAIL_GAP)


def crop_box(size: Size, x: int, y: int, width: int | None, height: int | None, aspect: float | None) -> tuple:
    """Return the (left, top, right, bottom) box a crop keeps."""
    src_w, src_h = size
    if aspect is not None:
        if src_w / src_h > aspect:
            keep_w, keep_h = max(1, min(src_w, round(src_h * aspect))), src_h
        else:
            keep_w, keep_h = src_w, max(1, min(src_h, round(src_w / aspect)))
        left, top = (src_w - keep_w) // 2, (src_h - keep_h) // 2
        return left, top, left + keep_w, top + keep_h
    if x >= src_w or y >= src_h:
        raise ValueError(f"the crop box starts at ({x}, {y}), outside the {src_w}x{src_h} image")
    right = src_w if width is None else min(src_w, x + width)
    bottom = src_h if height is None else min(src_h, y + height)
    return x, y, right, bottom


@implements("crop")
def crop(
    image: Image.Image, *, x: int = 0, y: int = 0, width: int | None = None, height: int | None = None,
    aspect: float | None = None,
) -> Image.Image:
    """Keep a box of the image (clipped to it), or its largest centred box of an aspect ratio."""
    if aspect is not None and (x or y or width is not None or height is not None):
        raise ValueError("give a box (x, y, width, height) or an aspect, not both")
    if aspect is not None and aspect <= 0:
        raise ValueError(f"aspect must be positive, got {aspect}")
    return image.crop(crop_box(image.size, x, y, width, height, aspect))


def canvas(mode: str, fill: str) -> tuple[str, float | tuple[int, ...]]:
    """Return the mode an image in `mode` needs to show `fill` (its colour, its alpha), and `fill` in it."""
    rgba = ImageColor.getrgb(fill)
    alpha = "A" in mode or (len(rgba) == 4 and rgba[3] < 255)
    grey = mode in ("L", "LA") and rgba[0] == rgba[1] == rgba[2]
    wanted = ("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB")
    return wanted, ImageColor.getcolor(fill, wanted)


def premultiplied(colour: float | tuple[int, ...]) -> float | tuple[int, ...]:
    """Return an (L/RGB..., A) colour with its colour scaled by its alpha, as Pillow's RGBa and La modes hold it."""
    if not isinstance(colour, tuple) or len(colour) not in (2, 4):
        return colour
    *values, alpha = colour
    return (*(round(v * alpha / 255) for v in values), alpha)


def uncovered(size: Size, angle: float, expand: bool) -> bool:
    """Tell whether a rotation leaves part of the output canvas uncovered."""
    quarter = angle % 90 == 0
    return not quarter or (not expand and angle % 180 != 0 and size[0] != size[1])


@implements("rotate")
def rotate(
    image: Image.Image, *, angle: float, expand: bool = True, fill: str = "#00000000", filter: str = "bicubic",
) -> Image.Image:
    """Rotate counter-clockwise by `angle` degrees, filling uncovered corners with `fill`."""
    if filter not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"rotate supports the nearest, bilinear and bicubic filters, got {filter!r}")
    if not uncovered(image.size, angle, expand):
        return image.rotate(angle, expand=expand)  # Pillow transposes whole quarter turns exactly
    mode, colour = canvas(image.mode, fill)
    if mode not in PREMULTIPLIED or filter == "nearest":
        source = image if image.mode == mode else image.convert(mode)
        return source.rotate(angle, FILTERS[filter], expand=expand, fillcolor=colour)
    # Resample premultiplied, so transparent pixels' colours do not bleed into visible ones (as Pillow does
    # for RGBA); RGB converts straight to that form, sparing a full-size RGBA copy on the way.
    source = image if image.mode in (mode, "RGB") else image.convert(mode)
    turned = source.convert(PREMULTIPLIED[mode]).rotate(angle, FILTERS[filter], expand=expand,
                                                         fillcolor=premultiplied(colour))
    return turned.convert(mode)


@implements("flip")
def flip(image: Image.Image, *, direction: str = "horizontal") -> Image.Image:
    """Mirror left-right (horizontal) or top-bottom (vertical)."""
    if direction not in FLIPS:
        raise ValueError(f"direction must be horizontal or vertical, got {direction!r}")
    return image.transpose(FLIPS[direction])


@implements("pad")
def pad(
    image: Image.Image, *, width: int | None = None, height: int | None = None, border: int = 0,
    fill: str = "#00000000",
) -> Image.Image:
    """Centre the image on a canvas of at least width x height, plus `border` on every side."""
    if border < 0:
        raise ValueError(f"border must be at least 0, got {border}")
    inner_w, inner_h = max(image.width, width or 0), max(image.height, height or 0)
    size = (inner_w + 2 * border, inner_h + 2 * border)
    if size == image.size:
        return image.copy()
    mode, colour = canvas(image.mode, fill)
    out = Image.new(mode, size, colour)
    corner = (border + (inner_w - image.width) // 2, border + (inner_h - image.height) // 2)
    out.paste(image if image.mode == mode else image.convert(mode), corner)
    return out
