"""The op catalogue: every op's name, parameters and description, declared once.

The web validates job steps against it before anything is queued; the worker binds
an implementation to each name (a test checks both sides cover the same names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spec.params import Param

Check = Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class Op:
    """One operation a job step can name."""

    name: str
    family: str
    description: str
    params: tuple[Param, ...] = ()
    analysis: bool = False  # adds JSON to the result and leaves the image as it is
    check: Check | None = None  # cross-parameter rule: returns a message when broken

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


# ---------------------------------------------------------------- declarations

MAX_SIDE = 16384
FILTERS = ("nearest", "bilinear", "bicubic", "lanczos")


def _one_side(params: dict[str, Any]) -> str | None:
    """Require at least one of width and height."""
    if params["width"] is None and params["height"] is None:
        return "give width, height or both"
    return None


register(
    Op(
        "resize",
        "geometry",
        "Resize to a width and/or height; fit says how the aspect ratio is kept.",
        (
            Param("width", "int", "Target width in pixels.", minimum=1, maximum=MAX_SIDE),
            Param("height", "int", "Target height in pixels.", minimum=1, maximum=MAX_SIDE),
            Param(
                "fit",
                "choice",
                "inside: within the box, never enlarged; contain: within the box; "
                "cover: fill the box, cropping the overflow; fill: exactly the box, stretched.",
                default="inside",
                choices=("inside", "contain", "cover", "fill"),
            ),
            Param("filter", "choice", "Resampling filter.", default="lanczos", choices=FILTERS),
        ),
        check=_one_side,
    )
)
register(Op("grayscale", "tone", "Convert to shades of grey, keeping transparency."))
register(
    Op(
        "stats",
        "analysis",
        "Per-channel mean, standard deviation and histogram, entropy and sharpness.",
        analysis=True,
    )
)
