"""Find jobs whose worker is gone (no heartbeat) and let RQ's own cleanup retry or fail them.

A job's entry in RQ's StartedJobRegistry expires `WORKER_LOST_AFTER` seconds after its
worker's last heartbeat; the supervisor of a busy child renews it (the child itself may be
deep in C code). When a whole worker host dies nobody renews it, and the next reaper pass
of any surviving worker hands the job to `StartedJobRegistry.cleanup`, which retries it
while it has retries left and fails it otherwise.

A worker that dies between taking a job and starting it leaves the job in the queue's
intermediate list (see worker/dequeue.py); the same pass puts such a job back on its queue.
"""

from __future__ import annotations

from typing import Any

from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import now

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
    rescue(queue, 2 * every)
    return True


def rescue(queue: Queue, after: float) -> int:
    """Put back on `queue` the jobs a worker took but never started, parked over `after` seconds; return how many."""
    parked = queue.intermediate_queue
    back = 0
    for job_id in parked.get_job_ids():
        if job_id in queue.started_job_registry or parked.set_first_seen(job_id):
            continue  # running, or seen parked for the first time: a live worker may be about to start it
        first = parked.get_first_seen(job_id)
        if first is None or (now() - first).total_seconds() < after:
            continue
        job = queue.fetch_job(job_id)
        parked.remove(job_id)
        if job is not None and job.get_status() == "queued":
            queue.enqueue_job(job, at_front=True)  # it never ran: first in line again
            back += 1
    return back
