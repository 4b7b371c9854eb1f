"""Delete files nobody will ask for again: results of expired jobs and abandoned partial files."""

from __future__ import annotations

import time

import redis
from rq.job import Job

from imgjobs.storage import Storage

STALE_TMP_SECONDS = 3600
#: A file this new may be an upload whose job the web is still queueing: never an orphan yet.
ORPHAN_GRACE_SECONDS = 300


def sweep(storage: Storage, connection: redis.Redis, grace: float = ORPHAN_GRACE_SECONDS) -> int:
    """Delete files of jobs Redis no longer knows (older than `grace` seconds), and stale partial files."""
    removed = 0
    for job_id in set(storage.job_ids(time.time() - grace)):
        if not connection.exists(Job.key_for(job_id)):
            removed += storage.remove(job_id)
    return removed + storage.sweep_partial(time.time() - STALE_TMP_SECONDS)
