"""Local files for the client: which to upload, the ops file, writing results atomically."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePath

import click

from imgjobs.jobs import IMAGE_SUFFIXES

GLOB_CHARS = set("*?[")


def collect(paths: Iterable[str]) -> list[tuple[Path, PurePath]]:
    """Return (file, name) for every file, image in a folder (any depth) and glob match, in order.

    A folder's files are named by their path inside it, others by their own name.
    """
    found: list[tuple[Path, PurePath]] = []
    for given in paths:
        if GLOB_CHARS & set(given):
            matches = sorted(Path(m) for m in glob.glob(given, recursive=True) if Path(m).is_file())
            if not matches:
                raise ValueError(f"{given}: no file matches")
            found += [(m, PurePath(m.name)) for m in matches]
        elif Path(given).is_dir():
            folder = Path(given)
            found += [(f, f.relative_to(folder)) for f in sorted(_images(folder))]
        elif Path(given).is_file():
            found.append((Path(given), PurePath(Path(given).name)))
        else:
            raise ValueError(f"{given}: no such file or folder")
    return found


def _images(folder: Path) -> Iterable[Path]:
    """Yield the image files under `folder` by their name's ending, leaving out hidden ones."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


def read_ops(ops: str) -> str:
    """Return the ops text, read from a file when given as @path."""
    if not ops.startswith("@"):
        return ops
    try:
        return Path(ops[1:]).read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {ops[1:]}: {exc.strerror}", param_hint="--ops") from None


def save(chunks: Iterable[bytes], target: Path) -> int:
    """Write `chunks` to `target` atomically (temp file, then rename); return the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target.stat().st_size
