"""Per-client limits, kept in Redis so every web process shares them: a submission rate and jobs in flight.

The client is `web.clients.current()` (the API key, else the address); a key's own limits
(`web.clients.overrides()`: "rate", "jobs") take the place of RATE_LIMIT and JOBS_PER_CLIENT.
"""

from __future__ import annotations

import time

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from rq.job import Job

from web import clients, store, usage
from web.errors import ApiError, error_response

#: Seconds a client over its jobs cap is told to wait before trying again.
JOBS_RETRY_AFTER = 5
#: An id claimed this recently may not be enqueued yet: not taken for an ended job.
CLAIM_GRACE = 60
#: claim() in one round trip: drop the client's ended jobs (and ids claimed over CLAIM_GRACE ago that never
#: became jobs), add the new id, refuse it again past the cap. KEYS: the client's set; ARGV: id, now, grace,
#: the set's TTL, the cap, RQ's job key prefix. Returns the count with the new id.
CLAIM = """
local ended = {finished = true, failed = true, stopped = true, canceled = true}
local now, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
local claimed = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #claimed, 2 do
    local state = redis.call('HGET', ARGV[6] .. claimed[i], 'status')
    if (state and ended[state]) or (not state and tonumber(claimed[i + 1]) < now - grace) then
        redis.call('ZREM', KEYS[1], claimed[i])
    end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if count > tonumber(ARGV[5]) then
    redis.call('ZREM', KEYS[1], ARGV[1])
end
return count
"""


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
    app.extensions["claim_script"] = app.extensions["redis"].register_script(CLAIM)  # EVALSHA, loaded on first use


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
    script = current_app.extensions["claim_script"]
    args = [job_id, time.time(), CLAIM_GRACE, current_app.config["FAILURE_TTL"], cap, Job.redis_job_namespace_prefix]
    count = int(script(keys=[key], args=args, client=store.connection()))  # the app's client, even if renewed
    if count > cap:
        usage.count_rejection("too_many_jobs")
        message = f"This client has {cap} jobs queued or running, its limit; retry once one of them ends."
        raise ApiError(429, "too_many_jobs", message, headers={"Retry-After": str(JOBS_RETRY_AFTER)})
