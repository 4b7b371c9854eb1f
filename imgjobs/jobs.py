"""The job contract between web and worker: the task name, output formats, statuses, keys."""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import Any

#: The worker's entry point, enqueued by dotted path so the web never imports worker code.
TASK = "worker.tasks.process"

#: Output formats a job can ask for, with their media types.
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

#: Upload formats accepted, as Pillow names them (Pillow's JPEG plugin also opens MPO, its PNG plugin APNG).
INPUT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")

#: What Pillow raises for broken or truncated files, on opening or decoding.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

DEFAULT_QUALITY = {"jpeg": 85, "webp": 80}

#: File name endings taken as images (any case) where a folder is walked (batch, the client), with their format.
IMAGE_SUFFIXES = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".mpo": "JPEG", ".png": "PNG", ".apng": "PNG", ".gif": "GIF",
    ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
}
#: The file name ending of each output format.
OUTPUT_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}

#: RQ's statuses folded into the five the API promises.
STATUSES = {
    "created": "queued",
    "queued": "queued",
    "deferred": "queued",
    "scheduled": "queued",
    "started": "started",
    "finished": "finished",
    "failed": "failed",
    "stopped": "canceled",
    "canceled": "canceled",
}
ENDED = frozenset({"finished", "failed", "canceled"})

#: Sorted set of job ids scored by creation time, for listing recent jobs.
RECENT_KEY = "imgjobs:recent"


def queue_names(config: Mapping[str, Any]) -> list[str]:
    """Return every queue the workers serve, in the order they take jobs from them (round-robin)."""
    return [config["QUEUE_NAME"], heavy_queue(config)]


def heavy_queue(config: Mapping[str, Any]) -> str:
    """Return the queue for jobs costing over HEAVY_PIXELS, served in turn with the normal one."""
    return f"{config['QUEUE_NAME']}-heavy"


def cost(sizes: list[tuple[int, int]]) -> int:
    """Return a job's cost in pixels handled: the decoded input and every step's output."""
    return sum(width * height for width, height in sizes)


def output_format(requested: str | None, input_format: str) -> str:
    """Return the output format: the one requested, else the input's if a web format, else png."""
    if requested:
        if requested.lower() in ("jpg", "jpeg"):
            return "jpeg"
        if requested.lower() not in MEDIA_TYPES:
            raise ValueError(f"format must be one of {', '.join(MEDIA_TYPES)}, got {requested!r}")
        return requested.lower()
    kind = input_format.lower().replace("mpo", "jpeg")
    return kind if kind in MEDIA_TYPES else "png"


def output_quality(requested: str | int | None, fmt: str) -> int | None:
    """Return the encoder quality (1-100) for lossy formats, None for png; refuse bad values either way."""
    quality = None
    if requested not in (None, ""):
        if not re.fullmatch(r"[0-9]{1,3}", str(requested), re.ASCII):  # not "1_0", " 50", "٥٠" or "1e2"
            raise ValueError(f"quality must be an integer from 1 to 100, got {str(requested)[:20]!r}")
        quality = int(str(requested))
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer from 1 to 100, got {quality}")
    if fmt not in DEFAULT_QUALITY:
        return None
    return quality or DEFAULT_QUALITY[fmt]


def stop_key(job_id: str) -> str:
    """Return the key the web sets to ask the worker to stop a running job."""
    return f"imgjobs:stop:{job_id}"


def event_channel(job_id: str) -> str:
    """Return the pub/sub channel the worker announces a job's end on."""
    return f"imgjobs:ended:{job_id}"
