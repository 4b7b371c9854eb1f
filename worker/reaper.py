"""Find jobs whose worker is gone (no heartbeat) and let RQ's own cleanup retry or fail them.

A job's entry in RQ's StartedJobRegistry expires `WORKER_LOST_AFTER` seconds after its
worker's last heartbeat; the supervisor of a busy child renews it (the child itself may be
deep in C code). When a whole worker host dies nobody renews it, and the next reaper pass
of any surviving worker hands the job to `StartedJobRegistry.cleanup`, which retries it
while it has retries left and fails it otherwise.
"""

from __future__ import annotations

from typing import Any

from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from imgjobs.storage import Storage
from worker import failures

LOCK_KEY = "imgjobs:reaper:{0}"


def reap(queue: Queue, storage: Storage, every: float) -> bool:
    """Retry or fail the queue's jobs whose worker stopped beating; False when another worker's turn."""
    if not queue.connection.set(LOCK_KEY.format(queue.name), 1, nx=True, px=int(every * 1000)):
        return False  # one reaper per pass, or a lost job would be requeued twice

    def lost(job: Job, *exc_info: Any) -> bool:
        """Say why the job ended; once no retry is left, its files are nobody's."""
        job.meta["error"] = failures.lost()
        job.save_meta()
        if not job.retries_left:
            storage.remove(job.id)
        return True

    registry = StartedJobRegistry(queue.name, connection=queue.connection, serializer=queue.serializer)
    registry.cleanup(exception_handlers=[lost])
    return True
