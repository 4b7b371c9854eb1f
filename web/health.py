"""Probes for orchestrators: /healthz (the process answers) and /readyz (it can do work)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, current_app

from web import store
from web.errors import error_response
from web.uploads import free_mb

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Answer while the process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Response | dict[str, str]:
    """Answer 200 when Redis answers and has room, and the storage takes a write and has room, else 503."""
    try:
        store.ping()
        if store.redis_full():
            return error_response(503, "queue_full", "Redis is at its memory limit (maxmemory).")
    except redis.RedisError as exc:
        return error_response(503, "queue_unavailable", f"Redis cannot be reached: {exc}")
    try:
        store.storage().check()
    except OSError as exc:
        return error_response(503, "storage_unavailable", f"The storage is not writable: {exc}")
    minimum = current_app.config["MIN_FREE_MB"]
    if free_mb(store.storage()) < minimum:
        return error_response(503, "storage_full", f"The data directory has less than {minimum:g} MB free.")
    return {"status": "ready"}
