"""Geometry: resize, thumbnail, crop, rotate, flip and pad."""

from __future__ import annotations

import functools
import math
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageColor

from imgjobs.catalog import crop_box, resize_size
from worker.ops.pixels import band_rows
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
#: How far each filter reaches, in source pixels at scale 1 (Pillow's Resample.c).
SUPPORT = {Image.Resampling.BILINEAR: 1.0, Image.Resampling.BICUBIC: 2.0, Image.Resampling.LANCZOS: 3.0}
#: Resampling splits across at most this many threads (Pillow's resampling releases the GIL)...
MAX_THREADS = 4
#: ...when it reads and writes at least this many pixels: below that, handing work to threads costs what it saves.
PARALLEL_PIXELS = 1 << 17
Box = tuple[float, float, float, float]
FLIPS = {"horizontal": Image.Transpose.FLIP_LEFT_RIGHT, "vertical": Image.Transpose.FLIP_TOP_BOTTOM}


def resize_draft(source: Size, *, width: int | None = None, height: int | None = None, fit: str = "inside",
                 **_: object) -> Size:
    """Return the smallest decode size from which this resize loses nothing."""
    out_w, out_h = resize_size(source, width, height, fit)
    if fit == "cover":
        scale = max(out_w / source[0], out_h / source[1])
        return math.ceil(source[0] * scale), math.ceil(source[1] * scale)
    return out_w, out_h


def thread_count() -> int:
    """Return how many threads resampling may use: the CPUs this process may run on that nothing else is
    running on now (this thread's at least), at most MAX_THREADS.

    A busy CPU gains nothing from another thread, only the handovers (a third more CPU a
    resize): with as many jobs as CPUs, each resamples on its own thread.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cpus - running_elsewhere()))


def running_elsewhere(loadavg: Path = Path("/proc/loadavg")) -> int:
    """Return how many other threads on this host are running or ready to run now (0 if the kernel does not say)."""
    try:
        running = int(loadavg.read_text().split()[3].split("/")[0])  # "0.52 0.58 0.59 3/712 4071"
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)  # less the thread asking


@functools.cache
def pool(pid: int) -> ThreadPoolExecutor:
    """Return process `pid`'s resampling threads (one pool a process: threads do not survive a fork)."""
    return ThreadPoolExecutor(MAX_THREADS - 1, thread_name_prefix=f"resample-{pid}")


def each(call: Callable[[tuple[int, int]], None], parts: Sequence[tuple[int, int]], threads: int) -> None:
    """Run `call` on every part, on `threads` threads (this one and the pool's), each taking every threads-th."""

    def run(share: Sequence[tuple[int, int]]) -> None:
        for part in share:
            call(part)
    rest = [pool(os.getpid()).submit(run, parts[i::threads]) for i in range(1, threads)]
    run(parts[::threads])
    for future in rest:
        future.result()


def spans(start: int, end: int, most: int, threads: int) -> list[tuple[int, int]]:
    """Return consecutive (start, end) spans covering range(start, end): at least one a thread, at most `most` long."""
    step = max(1, min(most, -((start - end) // threads)))  # ceil((end - start) / threads)
    return [(at, min(at + step, end)) for at in range(start, end, step)]


def single(box: Sequence[float]) -> tuple[float, ...]:
    """Return `box` as Pillow's C code holds it, in single precision."""
    return struct.unpack("4f", struct.pack("4f", *box))


def resample(
    image: Image.Image, size: Size, filter: Image.Resampling, box: Box | None = None, *,
    threads: int | None = None,
) -> Image.Image:
    """Return `image.resize(size, filter, box)`, byte for byte, computed on several threads when that pays."""
    box = (0.0, 0.0, float(image.width), float(image.height)) if box is None else box
    if threads is None:
        work = (box[2] - box[0]) * (box[3] - box[1]) + size[0] * size[1]
        threads = thread_count() if work >= PARALLEL_PIXELS else 1
    left, top, right, bottom = single(box)
    cropped = left.is_integer() and top.is_integer() and right - left == size[0] and bottom - top == size[1]
    if threads < 2 or filter not in SUPPORT or image.mode not in ("L", "RGB", *PREMULTIPLIED) or cropped:
        return image.resize(size, filter, box)  # cropped: Pillow copies the box, nothing to resample
    if image.mode in PREMULTIPLIED:  # as Pillow does, so transparent pixels' colours do not bleed
        source = image.convert(PREMULTIPLIED[image.mode])
        return two_pass(source, size, filter, box, threads).convert(image.mode)
    return two_pass(image, size, filter, box, threads)


def two_pass(image: Image.Image, size: Size, filter: Image.Resampling, box: Box,
             threads: int) -> Image.Image:
    """Resample in Pillow's two passes and order, the horizontal by bands of rows, the vertical by columns.

    Each pass resamples every row (column) on its own, with coefficients that depend only on
    the whole image's size, box and output size, so a band resampled alone has the same bytes.
    """
    (width, height), (out_w, out_h) = image.size, size
    left, top, right, bottom = single(box)
    horizontal = out_w != width or left != 0 or right != out_w  # Pillow's own tests
    vertical = out_h != height or top != 0 or bottom != out_h
    if horizontal and vertical and out_h < height and 2 * (width - out_w) < height - out_h:
        # Pillow 13 resamples vertically first when the height shrinks by over twice as much as the width
        middle = down(image, out_h, filter, box, read(box[0], box[2], out_w, width, filter), threads)
        return across(middle, out_w, filter, box, (0, out_h), threads)
    if horizontal:
        rows = read(box[1], box[3], out_h, height, filter) if vertical else (0, height)
        image = across(image, out_w, filter, box, rows, threads)
    return down(image, out_h, filter, box, (0, out_w), threads) if vertical else image


def read(start: float, end: float, count: int, length: int, filter: Image.Resampling) -> tuple[int, int]:
    """Return the source pixels (from, to) that resampling [start, end) of `length` to `count` reads, or more."""
    reach = SUPPORT[filter] * max(1.0, (end - start) / count)
    return max(0, math.floor(start - reach) - 1), min(length, math.ceil(end + reach) + 1)


def across(image: Image.Image, out_w: int, filter: Image.Resampling, box: Box,
           rows: tuple[int, int], threads: int) -> Image.Image:
    """Resample `rows` of `image` to `out_w` wide (box[0] to box[2]), by bands of rows; other rows stay blank."""
    out = Image.new(image.mode, (out_w, image.height))

    def band(span: tuple[int, int]) -> None:
        part = image.crop((0, span[0], image.width, span[1]))
        out.paste(part.resize((out_w, part.height), filter, (box[0], 0, box[2], part.height)), (0, span[0]))
    each(band, spans(*rows, band_rows(image.width), threads), threads)
    return out


def down(image: Image.Image, out_h: int, filter: Image.Resampling, box: Box,
         columns: tuple[int, int], threads: int) -> Image.Image:
    """Resample `columns` of `image` to `out_h` high (box[1] to box[3]), by bands of columns; others stay blank."""
    out = Image.new(image.mode, (image.width, out_h))

    def band(span: tuple[int, int]) -> None:
        part = image.crop((span[0], 0, span[1], image.height))
        out.paste(part.resize((part.width, out_h), filter, (0, box[1], part.width, box[3])), (span[0], 0))
    each(band, spans(*columns, band_rows(image.height), threads), threads)
    return out


@implements("resize", draft=resize_draft)
def resize(
    image: Image.Image, *, width: int | None = None, height: int | None = None, fit: str = "inside",
    filter: str = "lanczos",
) -> Image.Image:
    """Resize to a width and/or height, keeping the aspect ratio as `fit` says."""
    if width is None and height is None:
        raise ValueError("give width, height or both")
    size = resize_size(image.size, width, height, fit)
    return resample(image, size, FILTERS[filter], cover_box(image.size, size) if fit == "cover" else None)


def cover_box(source: Size, size: Size) -> Box:
    """Return the centred box of `source` with the aspect ratio of `size`, as `ImageOps.fit` computes it."""
    (src_w, src_h), ratio = source, size[0] / size[1]
    if src_w / src_h == ratio:
        keep_w, keep_h = float(src_w), float(src_h)
    elif src_w / src_h > ratio:
        keep_w, keep_h = ratio * src_h, float(src_h)
    else:
        keep_w, keep_h = float(src_w), src_w / ratio
    left, top = (src_w - keep_w) * 0.5, (src_h - keep_h) * 0.5
    return left, top, left + keep_w, top + keep_h


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
    if any(int(side / out / THUMBNAIL_GAP) > 1 for side, out in zip(image.size, size, strict=True)):
        return image.resize(size, FILTERS[filter], reducing_gap=THUMBNAIL_GAP)  # reduce() first, then resample
    return resample(image, size, FILTERS[filter])  # within the gap Pillow resamples directly: the same, on threads


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


def canvas(mode: str, fill: str | None) -> tuple[str, float | tuple[int, ...]]:
    """Return the mode an image in `mode` needs to show `fill` (its colour, its alpha), and `fill` in it.

    With no fill, an image with alpha gets transparent pixels and one without gets white ones,
    so it keeps its mode.
    """
    if fill is None:
        fill = "#ffffff00" if "A" in mode else "#ffffff"
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
    image: Image.Image, *, angle: float, expand: bool = True, fill: str | None = None, filter: str = "bicubic",
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
    fill: str | None = None,
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
