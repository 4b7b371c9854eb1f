"""Delete files nobody will ask for again: results of expired jobs and abandoned partial files."""

from __future__ import annotations

import time

import redis
from rq.job import Job

from imgjobs.storage import Storage, is_job_id

STALE_TMP_SECONDS = 3600


def sweep(storage: Storage, connection: redis.Redis) -> int:
    """Delete files of jobs Redis no longer knows, and stale partial files; return how many."""
    removed = 0
    for path in [*storage.uploads.iterdir(), *storage.results.iterdir()]:
        job_id = path.name.split(".")[0]
        if is_job_id(job_id) and not connection.exists(Job.key_for(job_id)):
            path.unlink(missing_ok=True)
            removed += 1
    cutoff = time.time() - STALE_TMP_SECONDS
    for path in [*storage.tmp.iterdir(), *storage.results.glob(".*.part")]:
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
