"""Probes for orchestrators: /healthz (the process answers) and /readyz (it can do work)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response

from web import store
from web.errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Answer while the process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Response | dict[str, str]:
    """Answer 200 when Redis answers and the storage takes a write, else 503."""
    try:
        store.ping()
    except redis.RedisError as exc:
        return error_response(503, "queue_unavailable", f"Redis cannot be reached: {exc}")
    try:
        store.storage().check()
    except OSError as exc:
        return error_response(503, "storage_unavailable", f"The storage is not writable: {exc}")
    return {"status": "ready"}
