"""The op catalogue: every op's name, parameters and description, declared once.

The web validates job steps against it before anything is queued; the worker binds
an implementation to each name (a test checks both sides cover the same names).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imgjobs.params import Param

Check = Callable[[dict[str, Any]], str | None]
Size = tuple[int, int]
#: (input size, bound parameters) -> output size, for the ops that change it.
Resize = Callable[[Size, dict[str, Any]], Size]


@dataclass(frozen=True)
class Op:
    """One operation a job step can name."""

    name: str
    family: str
    description: str
    params: tuple[Param, ...] = ()
    analysis: bool = False  # adds JSON to the result and leaves the image as it is
    check: Check | None = None  # cross-parameter rule: returns a message when broken
    size: Resize | None = None  # how the op changes the image size; None: it keeps it

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        """Return the full, typed parameters for `given`, or raise ValueError naming the parameter."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ParamError(unknown[0], f"is not a parameter of {self.name} (parameters: {names})")
        bound = {}
        for param in self.params:
            if param.name in given and given[param.name] is not None:
                try:
                    bound[param.name] = param.coerce(given[param.name])
                except ValueError as exc:
                    raise ParamError(param.name, str(exc)) from None
            elif param.required:
                raise ParamError(param.name, "is required")
            else:
                bound[param.name] = param.default
        problem = self.check(bound) if self.check else None
        if problem:
            raise ParamError(None, problem)
        return bound

    def schema(self) -> dict[str, Any]:
        """Describe this op for the API and the page."""
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "analysis": self.analysis,
            "params": [p.schema() for p in self.params],
        }


class ParamError(ValueError):
    """A parameter value an op cannot take."""

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param


class StepError(ValueError):
    """A job step that cannot run: names the step, and the parameter where there is one."""

    def __init__(self, step: int | None, param: str | None, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.param = param


class TooManyPixels(StepError):
    """A step whose output would be larger than the pixel budget allows."""


@dataclass(frozen=True)
class Budget:
    """The largest image any step may make: pixels in all, and the longest side."""

    pixels: int
    side: int

    def check(self, number: int, step: dict[str, Any], source: Size) -> Size:
        """Return the size `step` (numbered from 1) makes from `source`, or raise TooManyPixels."""
        op = CATALOG[step["op"]]
        if op.size is None:
            return source
        try:
            width, height = op.size(source, step)
        except ValueError as exc:
            raise StepError(number, None, f"step {number} ({op.name}): {exc}") from None
        if width * height > self.pixels or max(width, height) > self.side:
            raise TooManyPixels(number, None, (
                f"step {number} ({op.name}) would make a {width}x{height} image; the limit is "
                f"{self.pixels:,} pixels and {self.side:,} pixels a side"
            ))
        return width, height

    def sizes(self, steps: list[dict[str, Any]], source: Size) -> list[Size]:
        """Return the size after each of `steps` from `source`, or raise at the first step over budget."""
        out = []
        for number, step in enumerate(steps, start=1):
            source = self.check(number, step, source)
            out.append(source)
        return out


CATALOG: dict[str, Op] = {}


def register(op: Op) -> Op:
    """Add `op` to the catalogue under its name."""
    if op.name in CATALOG:
        raise ValueError(f"op {op.name!r} is already registered")
    CATALOG[op.name] = op
    return op


def validate_steps(steps: Any, max_steps: int) -> list[dict[str, Any]]:
    """Return `steps` with every parameter typed and defaulted, or raise StepError."""
    if not isinstance(steps, list):
        raise StepError(None, None, 'ops must be a JSON list of steps like [{"op": "resize", "width": 256}]')
    if len(steps) > max_steps:
        raise StepError(None, None, f"ops has {len(steps)} steps; at most {max_steps} are allowed")
    return [_validate_step(number, step) for number, step in enumerate(steps, start=1)]


def _validate_step(number: int, step: Any) -> dict[str, Any]:
    """Check one step, numbered from 1 in messages."""
    if not isinstance(step, dict) or not isinstance(step.get("op"), str):
        raise StepError(number, None, f'step {number} must be an object with an "op" name')
    given = dict(step)
    name = given.pop("op")
    op = CATALOG.get(name)
    if op is None:
        raise StepError(number, None, f"step {number}: unknown op {name!r} (see GET /api/v1/ops)")
    try:
        return {"op": name, **op.bind(given)}
    except ParamError as exc:
        where = f"step {number} ({name})" + (f": {exc.param}" if exc.param else "")
        raise StepError(number, exc.param, f"{where} {exc}" if exc.param else f"{where}: {exc}") from None


def describe() -> list[dict[str, Any]]:
    """Describe every op, in catalogue order."""
    return [op.schema() for op in CATALOG.values()]


# ---------------------------------------------------------------- sizes


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


def crop_box(size: Size, x: int, y: int, width: int | None, height: int | None,
             aspect: float | None) -> tuple[int, int, int, int]:
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


def rotated_size(source: Size, angle: float, expand: bool) -> Size:
    """Return the size of `source` rotated by `angle` degrees, as Pillow's `Image.rotate` makes it."""
    angle = angle % 360.0
    width, height = source
    if not expand or angle == 180:
        return source
    if angle in (90, 270):
        return height, width
    turn = -math.radians(angle)
    cos, sin = round(math.cos(turn), 15), round(math.sin(turn), 15)
    centre_x, centre_y = width / 2.0, height / 2.0
    shift_x = cos * -centre_x + sin * -centre_y + centre_x  # Pillow's matrix: turn about the centre
    shift_y = -sin * -centre_x + cos * -centre_y + centre_y
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    xs = [cos * x + sin * y + shift_x for x, y in corners]
    ys = [-sin * x + cos * y + shift_y for x, y in corners]
    return math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))


def _resize_size(source: Size, p: dict[str, Any]) -> Size:
    """Size after resize."""
    return resize_size(source, p["width"], p["height"], p["fit"])


def _thumbnail_size(source: Size, p: dict[str, Any]) -> Size:
    """Size after thumbnail."""
    return resize_size(source, p["width"], p["height"], "inside")


def _crop_size(source: Size, p: dict[str, Any]) -> Size:
    """Size after crop."""
    left, top, right, bottom = crop_box(source, p["x"], p["y"], p["width"], p["height"], p["aspect"])
    return right - left, bottom - top


def _rotate_size(source: Size, p: dict[str, Any]) -> Size:
    """Size after rotate."""
    return rotated_size(source, p["angle"], p["expand"])


def _pad_size(source: Size, p: dict[str, Any]) -> Size:
    """Size after pad: the canvas, then the border on every side."""
    inner_w, inner_h = max(source[0], p["width"] or 0), max(source[1], p["height"] or 0)
    return inner_w + 2 * p["border"], inner_h + 2 * p["border"]


# ---------------------------------------------------------------- declarations

MAX_SIDE = 16384
FILTERS = ("nearest", "bilinear", "bicubic", "lanczos")


def _one_side(params: dict[str, Any]) -> str | None:
    """Require at least one of width and height."""
    if params["width"] is None and params["height"] is None:
        return "give width, height or both"
    return None


def _box_or_aspect(params: dict[str, Any]) -> str | None:
    """Require a crop box or an aspect ratio, not both."""
    box = params["x"] or params["y"] or params["width"] is not None or params["height"] is not None
    if params["aspect"] is not None and box:
        return "give a box (x, y, width, height) or an aspect, not both"
    if params["aspect"] is None and not box:
        return "give a box (x, y, width, height) or an aspect"
    return None


def _canvas_or_border(params: dict[str, Any]) -> str | None:
    """Require a canvas size or a border."""
    if params["width"] is None and params["height"] is None and not params["border"]:
        return "give width, height or border"
    return None


def _odd_size(params: dict[str, Any]) -> str | None:
    """Require an odd window, so it has a centre pixel."""
    return None if params["size"] % 2 else f"size must be odd, got {params['size']}"


def _side(name: str, what: str, default: int | None = None) -> Param:
    """Declare a width or height in pixels."""
    return Param(name, "int", what, default=default, minimum=1, maximum=MAX_SIDE)


def _fill(what: str) -> Param:
    """Declare the colour of uncovered pixels; unset, it follows the image (transparent if it has alpha)."""
    return Param("fill", "color", f"{what} default: transparent if the image has alpha, else white. "
                 "'#rrggbbaa' with alpha below ff adds transparency.")


def _seed() -> Param:
    """Declare the seed that makes k-means repeatable."""
    return Param("seed", "int", "Random seed for the pixel sample and k-means++ start.", default=0, minimum=0,
                 maximum=2**31 - 1)


_FIT = (
    "inside: within the box, never enlarged; contain: within the box; "
    "cover: fill the box, cropping the overflow; fill: exactly the box, stretched."
)

# geometry
register(Op("resize", "geometry", "Resize to a width and/or height; fit says how the aspect ratio is kept.", (
    _side("width", "Target width in pixels."),
    _side("height", "Target height in pixels."),
    Param("fit", "choice", _FIT, default="inside", choices=("inside", "contain", "cover", "fill")),
    Param("filter", "choice", "Resampling filter.", default="lanczos", choices=FILTERS),
), check=_one_side, size=_resize_size))
register(Op("thumbnail", "geometry", "Shrink to fit a box, never enlarging; faster than resize, for previews.", (
    _side("width", "Largest width in pixels.", 256),
    _side("height", "Largest height in pixels.", 256),
    Param("filter", "choice", "Resampling filter.", default="bicubic", choices=FILTERS),
), size=_thumbnail_size))
register(Op("crop", "geometry", "Cut out a box (clipped to the image), or the largest centred box of an aspect.", (
    Param("x", "int", "Left edge of the box in pixels.", default=0, minimum=0, maximum=MAX_SIDE),
    Param("y", "int", "Top edge of the box in pixels.", default=0, minimum=0, maximum=MAX_SIDE),
    _side("width", "Width of the box in pixels; default: to the right edge."),
    _side("height", "Height of the box in pixels; default: to the bottom edge."),
    Param("aspect", "float", "Width / height of a centred box, e.g. 1.7778 for 16:9.", minimum=0.01, maximum=100),
), check=_box_or_aspect, size=_crop_size))
register(Op("rotate", "geometry", "Rotate counter-clockwise by any angle.", (
    Param("angle", "float", "Degrees counter-clockwise; negative turns clockwise.", required=True, minimum=-360,
          maximum=360),
    Param("expand", "bool", "Grow the canvas to hold the whole rotated image.", default=True),
    _fill("Colour of the uncovered corners;"),
    Param("filter", "choice", "Resampling filter.", default="bicubic", choices=FILTERS[:3]),
), size=_rotate_size))
register(Op("flip", "geometry", "Mirror the image.", (
    Param("direction", "choice", "horizontal: left-right; vertical: top-bottom.", default="horizontal",
          choices=("horizontal", "vertical")),
)))
register(Op("pad", "geometry", "Centre on a canvas of at least width x height, then add a border.", (
    _side("width", "Smallest canvas width in pixels."),
    _side("height", "Smallest canvas height in pixels."),
    Param("border", "int", "Border added on every side, in pixels.", default=0, minimum=0, maximum=MAX_SIDE),
    _fill("Colour of the padding;"),
), check=_canvas_or_border, size=_pad_size))

# tone and colour
register(Op("grayscale", "tone", "Convert to shades of grey, keeping transparency."))
register(Op("invert", "tone", "Invert the colours, keeping transparency."))
register(Op("autocontrast", "tone", "Stretch each channel to the full range, ignoring the extreme pixels.", (
    Param("cutoff", "float", "Percent of pixels ignored at each end.", default=0.0, minimum=0, maximum=49),
)))
register(Op("equalize", "tone", "Equalise the histogram: one tone curve from all colour channels' histogram."))
register(Op("brightness", "tone", "Scale brightness: 0 is black, 1 unchanged, 2 twice as bright.", (
    Param("factor", "float", "Brightness factor.", default=1.2, minimum=0, maximum=10),
)))
register(Op("contrast", "tone", "Scale contrast around the mean grey: 0 is flat grey, 1 unchanged.", (
    Param("factor", "float", "Contrast factor.", default=1.2, minimum=0, maximum=10),
)))
register(Op("gamma", "tone", "Apply a gamma curve, out = in ** gamma: below 1 brightens, above 1 darkens.", (
    Param("gamma", "float", "Exponent of the curve.", default=0.8, minimum=0.05, maximum=20),
)))
register(Op("posterize", "tone", "Keep only the top bits of each channel.", (
    Param("bits", "int", "Bits kept per channel.", default=4, minimum=1, maximum=8),
)))
register(Op("sepia", "tone", "Tint in sepia tones.", (
    Param("amount", "float", "0: unchanged, 1: full sepia.", default=1.0, minimum=0, maximum=1),
)))

# filters
register(Op("blur", "filters", "Gaussian blur.", (
    Param("radius", "float", "Standard deviation of the Gaussian, in pixels.", default=2.0, minimum=0, maximum=250),
)))
register(Op("sharpen", "filters", "Unsharp mask: add back the difference from a blurred copy.", (
    Param("radius", "float", "Blur radius of the mask, in pixels.", default=2.0, minimum=0, maximum=250),
    Param("amount", "float", "Strength: 1.5 adds 150% of the difference.", default=1.5, minimum=0, maximum=10),
    Param("threshold", "int", "Leave pixels that differ from the blur by less than this.", default=3, minimum=0,
          maximum=255),
)))
register(Op("edges", "filters", "Sobel gradient magnitude of the luma, as a grey image.", (
    Param("normalize", "bool", "Stretch so the strongest edge is white (else a full black-to-white step is).",
          default=False),
)))
register(Op("denoise", "filters", "Median filter: each pixel becomes the median of its size x size window.", (
    Param("size", "int", "Window side in pixels (odd).", default=3, minimum=3, maximum=7),
), check=_odd_size))

# ML
register(Op("quantize", "ml", "Reduce to k colours found by k-means; the same seed gives the same output.", (
    Param("colors", "int", "Number of colours.", default=8, minimum=2, maximum=256),
    _seed(),
)))
register(Op("palette", "ml", "Dominant colours by k-means, with each one's share of the pixels.", (
    Param("colors", "int", "Number of colours.", default=5, minimum=1, maximum=32),
    _seed(),
), analysis=True))

# analysis
register(Op("hash", "analysis", "Perceptual hashes (aHash, dHash, pHash) as hex, as the imagehash package has them.", (
    Param("hash_size", "int", "Side of the hash grid: each hash has hash_size squared bits.", default=8, minimum=2,
          maximum=32),
), analysis=True))
register(Op("stats", "analysis", "Per-channel mean, standard deviation and histogram, entropy and sharpness.",
            analysis=True))
