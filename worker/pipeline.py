"""A job's steps run in order over one image: the part of a job that knows no queue."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from imgjobs.catalog import CATALOG, Budget
from imgjobs.jobs import MEDIA_TYPES
from worker import imagefile
from worker.ops import DRAFTS, OPS

Progress = Callable[[float], None]


def run(
    image: Image.Image, steps: list[dict[str, Any]], progress: Progress | None = None, budget: Budget | None = None,
) -> tuple[Image.Image, list]:
    """Apply `steps` to `image`; return the new image and the analysis outputs.

    With a `budget`, each step's output size is checked before the step runs (the web
    checked the whole chain from the header already; this is the same catalogue code).
    """
    analysis = []
    for number, step in enumerate(steps, start=1):
        if budget:
            budget.check(number, step, image.size)
        name, params = step["op"], {k: v for k, v in step.items() if k != "op"}
        output = OPS[name](image, **params)
        if CATALOG[name].analysis:
            analysis.append({"step": number, "op": name, "output": output})
        else:
            image = output
        if progress:
            progress(number / (len(steps) + 1))  # encoding the result is the last step
    return image, analysis


def shrink(steps: list[dict[str, Any]]) -> Callable[[imagefile.Size], imagefile.Size] | None:
    """Return how small the first step lets the decoder go, if it only needs part of the pixels."""
    if not steps or steps[0]["op"] not in DRAFTS:
        return None
    params = {k: v for k, v in steps[0].items() if k != "op"}
    return partial(DRAFTS[steps[0]["op"]], **params)


def process(
    source: Path, result: Path, job_spec: dict[str, Any], progress: Progress | None = None,
    budget: Budget | None = None,
) -> dict:
    """Decode `source`, run the job's steps within `budget`, write `result`; return what the job produced."""
    steps, fmt = job_spec["ops"], job_spec["format"]
    image = imagefile.load(source, shrink(steps))
    image, analysis = run(image, steps, progress, budget)
    size = imagefile.save(image, result, fmt, job_spec.get("quality"))
    return {
        "width": image.width,
        "height": image.height,
        "format": fmt,
        "media_type": MEDIA_TYPES[fmt],
        "bytes": size,
        "analysis": analysis,
    }
