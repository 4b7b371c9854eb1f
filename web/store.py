"""The job store: Redis and RQ seen from the web side (enqueue, look up, wait, cancel, list)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from imgjobs import storage as storages
from imgjobs.jobs import ENDED, RECENT_KEY, STATUSES, TASK, heavy_queue, stop_key
from imgjobs.storage import Storage, is_job_id
from web.errors import ApiError
from web.events import Listener

log = logging.getLogger(__name__)
STOP_WAIT = 2.0  # the worker's supervisor kills a canceled job's child within a poll


def init_app(app: Flask) -> None:
    """Open one Redis connection pool for the app; fail fast when Redis is down."""
    app.extensions["redis"] = redis.Redis.from_url(
        app.config["REDIS_URL"],
        socket_connect_timeout=app.config["REDIS_TIMEOUT"],
        socket_timeout=app.config["REDIS_TIMEOUT"],  # a hung Redis costs two of these, then a 503
        retry=RedisRetry(NoBackoff(), 1),
    )
    # a hung Redis costs the first long-poll what it costs any other call: two timeouts, then a 503
    app.extensions["events"] = Listener(app.extensions["redis"], 2 * app.config["REDIS_TIMEOUT"])


def connection() -> redis.Redis:
    """Return the app's Redis client."""
    return current_app.extensions["redis"]


def storage() -> Storage:
    """Return the app's storage (the data directory or the object store)."""
    return storages.from_config(current_app.config)


def queue(heavy: bool = False) -> Queue:
    """Return the queue jobs go to: the normal one, or the heavy one workers serve in turn with it."""
    name = heavy_queue(current_app.config) if heavy else current_app.config["QUEUE_NAME"]
    return Queue(name, connection=connection(), serializer=JSONSerializer)


def enqueue(
    job_id: str, job_spec: dict[str, Any], input_info: dict[str, Any], owner: str | None = None, heavy: bool = False,
    also: Callable[[Pipeline], object] | None = None,
) -> Job:
    """Queue a job (on the heavy queue when `heavy`) and index it in the recent lists, in one round trip to Redis.

    `also` adds its own commands to that round trip (the usage count).
    """
    config = current_app.config
    retries = config["JOB_RETRIES"]
    now = time.time()
    oldest = now - max(config["RESULT_TTL"], config["FAILURE_TTL"])
    with connection().pipeline() as pipe:
        job = queue(heavy).enqueue(
            TASK,
            job_spec,
            job_id=job_id,
            job_timeout=config["JOB_TIMEOUT"],
            result_ttl=config["RESULT_TTL"],
            failure_ttl=config["FAILURE_TTL"],
            retry=Retry(max=retries) if retries else None,  # requeued at once: no scheduler process needed
            meta={"progress": 0.0, "input": input_info, **({"owner": owner} if owner else {})},
            description=f"{len(job_spec['ops'])} step(s) on {input_info.get('filename') or job_id}",
            pipeline=pipe,
        )
        for key in {RECENT_KEY, recent_key(owner)}:
            pipe.zadd(key, {job_id: now})
            pipe.zremrangebyscore(key, "-inf", oldest)
        if also:
            also(pipe)
        pipe.execute()
    return job


def check_room() -> None:
    """Refuse a new job while MAX_QUEUED jobs wait (backpressure), before its upload is read."""
    limit = current_app.config["MAX_QUEUED"]
    if queue().count >= limit:
        message = f"{limit} jobs are already waiting; try again shortly."
        raise ApiError(503, "queue_full", message, headers={"Retry-After": "10"})


def redis_full() -> bool:
    """Tell whether Redis has reached its maxmemory (with noeviction it then refuses new jobs)."""
    info = connection().info("memory")
    return bool(info.get("maxmemory")) and info["used_memory"] >= info["maxmemory"]


def recent_key(owner: str | None) -> str:
    """Return the recent-jobs index of one owner, or everyone's for None."""
    return f"{RECENT_KEY}:{owner}" if owner else RECENT_KEY


def fetch(job_id: str, owner: str | None = None) -> Job:
    """Return the job with this id (only if `owner` owns it, when given), or raise a 404 ApiError."""
    if not is_job_id(job_id):
        raise _unknown(job_id)
    job = Job(job_id, connection=connection(), serializer=JSONSerializer)
    try:
        reload(job)
    except NoSuchJobError:
        raise _unknown(job_id) from None
    if owner is not None and job.meta.get("owner") != owner:
        raise _unknown(job_id)  # the same answer as for no job: another key's job is not revealed
    return job


def reload(job: Job) -> None:
    """Read the job's hash and its latest result together, in one round trip (RQ's refresh reads only the hash)."""
    with job.connection.pipeline() as pipe:  # MULTI: the worker writes status and result in one transaction too
        pipe.hgetall(job.key)
        pipe.xrevrange(Result.get_key(job.id), "+", "-", count=1)
        data, latest = pipe.execute()
    if not data:
        raise NoSuchJobError(f"No such job: {job.key}")
    job.restore(data)
    # RQ's return_value() and latest_result() read this cache before asking Redis again
    job._cached_result = None
    if latest:
        result_id, payload = latest[0]
        job._cached_result = Result.restore(job.id, result_id.decode(), payload, job.connection, job.serializer)


def status(job: Job) -> str:
    """Return the job's status as the API names it."""
    return STATUSES.get(job.get_status(refresh=False) or "queued", "queued")


def wait(job: Job, seconds: float) -> Job:
    """Block until the job ends or `seconds` pass, woken by the worker's end-of-job message."""
    if seconds <= 0 or status(job) in ENDED:
        return job
    deadline = time.monotonic() + seconds
    listener: Listener = current_app.extensions["events"]
    with listener.waiter(job.id) as ended:
        reload(job)  # the job may have ended before the waiter was registered
        while status(job) not in ENDED and (left := deadline - time.monotonic()) > 0:
            ended.wait(min(left, 1.0))  # the message or a second, whichever first
            ended.clear()  # the worker publishes after writing the state, so the reload below sees it
            reload(job)
    return job


def cancel(job: Job) -> bool:
    """Cancel a queued job, stop a running one, or delete an ended one; True when deleted."""
    state = status(job)
    if state == "queued":
        job.cancel()
    elif state == "started":
        connection().set(stop_key(job.id), 1, ex=current_app.config["JOB_TIMEOUT"] + 60)
        wait(job, STOP_WAIT)  # the worker removes its files once the child writing them is gone
        return False
    else:
        job.delete()
        for key in {RECENT_KEY, recent_key(job.meta.get("owner"))}:
            connection().zrem(key, job.id)
    try:
        storage().remove(job.id)
    except OSError as exc:  # the job is gone; the janitor deletes its files once the store is back
        log.warning("could not delete the files of job %s: %s", job.id, exc)
    return state in ENDED


def recent(page: int, per_page: int, owner: str | None = None) -> tuple[list[Job], int]:
    """Return one page of jobs (`owner`'s, or everyone's), newest first, with the total count."""
    conn = connection()
    key = recent_key(owner)
    start = (page - 1) * per_page
    ids = [str(i, "ascii") for i in conn.zrevrange(key, start, start + per_page - 1)]  # type: ignore[arg-type]
    jobs = Job.fetch_many(ids, connection=conn, serializer=JSONSerializer)
    gone = [job_id for job_id, job in zip(ids, jobs, strict=True) if job is None]
    if gone:
        conn.zrem(key, *gone)
    return [job for job in jobs if job is not None], int(conn.zcard(key))


def ping() -> None:
    """Raise when Redis cannot be reached."""
    connection().ping()


def _unknown(job_id: str) -> ApiError:
    """Say there is no such job."""
    return ApiError(404, "job_not_found", f"No job {job_id!r}: it never existed or has expired.")


def timestamp(moment: datetime | None) -> str | None:
    """Format a UTC time as ISO 8601 with a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None
