"""Per-key usage counted in Redis (so every web process adds to the same numbers): jobs made, calls refused."""

from __future__ import annotations

import logging

import redis
from flask import g

from web import store

log = logging.getLogger(__name__)

JOBS_KEY = "imgjobs:usage:jobs"
REJECTIONS_KEY = "imgjobs:usage:rejections"
#: The label of calls made without a (valid) key: no key name can look like it.
ANONYMOUS = "(none)"


def caller() -> str:
    """Return the name counts are kept under: the signed-in key's, else ANONYMOUS."""
    return str(g.get("key_name") or ANONYMOUS)


def count_job(pipeline: redis.client.Pipeline | None = None) -> None:
    """Count a job the caller created (in `pipeline`, when given: the enqueue's own round trip)."""
    if pipeline is None:
        _add(JOBS_KEY, caller())
    else:
        pipeline.hincrby(JOBS_KEY, caller(), 1)


def count_rejection(reason: str) -> None:
    """Count a call refused for `reason` (an error code such as `unauthorized` or `rate_limited`)."""
    _add(REJECTIONS_KEY, f"{caller()}|{reason}")


def _add(key: str, field: str) -> None:
    """Add one to a counter; a Redis outage loses the count, never the answer."""
    try:
        store.connection().hincrby(key, field, 1)
    except redis.RedisError as exc:
        log.warning("usage not counted (%s): %s", field, exc)


def jobs() -> dict[str, int]:
    """Return jobs created, by key name."""
    counts = store.connection().hgetall(JOBS_KEY)
    return {_text(name): int(count) for name, count in counts.items()}


def rejections() -> dict[tuple[str, str], int]:
    """Return refused calls, by (key name, reason)."""
    counts = store.connection().hgetall(REJECTIONS_KEY)
    out = {}
    for field, count in counts.items():
        name, _, reason = _text(field).partition("|")
        out[name, reason] = int(count)
    return out


def _text(value: bytes | str) -> str:
    """Return a Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value
