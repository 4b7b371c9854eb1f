"""Per-client limits, kept in Redis so every web process shares them: a submission rate and jobs in flight.

The client is `web.clients.current()` (the API key, else the address); a key's own limits
(`web.clients.overrides()`: "rate", "jobs") take the place of RATE_LIMIT and JOBS_PER_CLIENT.
"""

from __future__ import annotations

import time
from typing import cast

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from rq.job import Job

from web import clients, store, usage
from web.errors import ApiError, error_response

#: Seconds a client over its jobs cap is told to wait before trying again.
JOBS_RETRY_AFTER = 5
#: An id claimed this recently may not be enqueued yet: not taken for an ended job.
CLAIM_GRACE = 60
ENDED_STATES = {b"finished", b"failed", b"stopped", b"canceled"}


def init_app(app: Flask) -> None:
    """Limit each client's job submissions to its rate, counted in the app's Redis."""
    app.extensions["limiter"] = Limiter(
        clients.current,
        app=app,
        default_limits=[_rate],
        default_limits_exempt_when=lambda: not (request.method == "POST" and request.endpoint == "api.create_job"),
        storage_uri=app.config["REDIS_URL"],
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 5},
        headers_enabled=True,
        swallow_errors=True,  # Redis down: the request goes on and gets the queue's own 503
        on_breach=_refuse,
        key_prefix="imgjobs:rate",
    )


def _rate() -> str:
    """Return the caller's rate: its key's own, else RATE_LIMIT."""
    return str(clients.overrides().get("rate") or current_app.config["RATE_LIMIT"])


def _refuse(limit: RequestLimit) -> Response:
    """Answer a client over its rate (Flask-Limiter adds Retry-After)."""
    message = f"Too many jobs submitted: this client may submit {limit.limit}; retry after Retry-After seconds."
    usage.count_rejection("rate_limited")
    return error_response(429, "rate_limited", message)


def claim(job_id: str) -> None:
    """Count `job_id` against the caller's cap of queued and running jobs, or raise 429 too_many_jobs."""
    cap = int(clients.overrides().get("jobs") or current_app.config["JOBS_PER_CLIENT"])
    key = f"imgjobs:inflight:{clients.current()}"
    conn = store.connection()
    claimed = cast(list[tuple[bytes, float]], conn.zrange(key, 0, -1, withscores=True))
    with conn.pipeline() as pipe:
        for member, _ in claimed:
            pipe.hget(Job.key_for(member.decode()), "status")
        states = pipe.execute()
    now = time.time()
    ended = [member for (member, at), state in zip(claimed, states, strict=True)
             if state in ENDED_STATES or (state is None and at < now - CLAIM_GRACE)]
    with conn.pipeline() as pipe:
        if ended:
            pipe.zrem(key, *ended)
        pipe.zadd(key, {job_id: now})
        pipe.zcard(key)
        pipe.expire(key, current_app.config["FAILURE_TTL"])
        count = pipe.execute()[-2]
    if count > cap:
        conn.zrem(key, job_id)
        usage.count_rejection("too_many_jobs")
        message = f"This client has {cap} jobs queued or running, its limit; retry once one of them ends."
        raise ApiError(429, "too_many_jobs", message, headers={"Retry-After": str(JOBS_RETRY_AFTER)})
