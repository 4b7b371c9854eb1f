"""Typed op parameters: each knows how to check a value and describe itself."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

KINDS = ("int", "float", "bool", "choice", "color")
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


@dataclass(frozen=True)
class Param:
    """One parameter of an op: its type, range or choices, and default."""

    name: str
    kind: str
    description: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} needs choices")

    def coerce(self, value: Any) -> Any:
        """Return `value` as this parameter's type, or raise ValueError saying what is expected."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(f"must be true or false, got {_short(value)}")
        if self.kind == "choice":
            if value in self.choices:
                return value
            raise ValueError(f"must be one of {', '.join(self.choices)}, got {_short(value)}")
        if self.kind == "color":
            if isinstance(value, str) and _COLOR.fullmatch(value):
                return value.lower()
            raise ValueError(f"must be a colour like '#ff8800' or '#ff880080', got {_short(value)}")
        return self._number(value)

    def _number(self, value: Any) -> int | float:
        """Check a number against this parameter's type and range."""
        whole = self.kind == "int"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be {self._expected()}, got {_short(value)}")
        try:
            real = float(value)  # an int too big for a float is out of every range
        except OverflowError:
            raise ValueError(f"must be {self._expected()}, got {_short(value)}") from None
        if not math.isfinite(real) or (whole and not real.is_integer()):
            raise ValueError(f"must be {self._expected()}, got {_short(value)}")
        number = int(value) if whole else real
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise ValueError(f"must be {self._expected()}, got {_short(value)}")
        return number

    def _expected(self) -> str:
        """Describe the accepted numbers in words."""
        noun = "an integer" if self.kind == "int" else "a number"
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"{noun} from {low:g} to {high:g}"
        if low is not None:
            return f"{noun} of at least {low:g}"
        if high is not None:
            return f"{noun} of at most {high:g}"
        return noun

    def schema(self) -> dict[str, Any]:
        """Describe this parameter for the API and the page."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "description": self.description}
        out["required"] = self.required
        if self.default is not None:
            out["default"] = self.default
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        return out


def _short(value: Any) -> str:
    """Return `value` for an error message, a huge number cut short."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
