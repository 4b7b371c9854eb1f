"""The worker's half of the op catalogue: an implementation bound to each catalogue name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from imgjobs.catalog import CATALOG

F = TypeVar("F", bound=Callable[..., Any])
Size = tuple[int, int]

#: op name -> pure function (image, **params) -> image, or -> dict for analysis ops.
OPS: dict[str, Callable[..., Any]] = {}
#: op name -> function (source size, **params) -> smallest decode size the op needs.
DRAFTS: dict[str, Callable[..., Size]] = {}


def implements(name: str, draft: Callable[..., Size] | None = None) -> Callable[[F], F]:
    """Bind the decorated function to the catalogue op `name`."""
    if name not in CATALOG:
        raise ValueError(f"{name!r} is not in the op catalogue")

    def bind(func: F) -> F:
        OPS[name] = func
        if draft is not None:
            DRAFTS[name] = draft
        return func

    return bind
