"""Take jobs from several queues without a window in which a dying worker loses one.

RQ parks a dequeued job in the queue's intermediate list (LMOVE) only when a worker
serves a single queue; over several queues it pops with BLPOP, and a child killed
between that pop and the job's entry in the started registry leaves the job
`queued` in no queue at all. Here every queue is taken from with LMOVE, in the
worker's round-robin order, so such a job stays in an intermediate list, where
the reaper finds it (RQ's `IntermediateQueue.cleanup`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job

#: Seconds an idle worker blocks on its first queue before it looks at the others again.
POLL_SECONDS = 1


class SafeQueue(Queue):
    """A queue class whose dequeue over several queues parks each job like RQ's single-queue one."""

    #: The queue an idle worker blocks on (jobs there start at once; the others' within POLL_SECONDS).
    #: Set once per worker process, before it starts taking jobs.
    primary_key: str | None = None

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls, queues: Iterable[Queue], timeout: int | None, connection: Redis, **fetch: Any
    ) -> tuple[Job, Queue] | None:
        """Return the first job of the first queue that has one, blocking up to `timeout` seconds."""
        keys = [queue.key for queue in queues]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for key in keys:
                found = cls._take(connection, key, None, fetch)
                if found:
                    return found
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise DequeueTimeout(timeout, keys)
            wait_on = cls.primary_key if cls.primary_key and cls.primary_key in keys else keys[0]
            try:  # block on the primary queue for a while, then look at every queue again
                found = cls._take(connection, wait_on, max(1, min(POLL_SECONDS, int(left))), fetch)
            except DequeueTimeout:
                continue
            if found:
                return found

    def move_dependents_to_ready(self, job: Job, *args: Any, **kwargs: Any) -> dict[str, list[str]]:
        """Return no dependents without reading them: the web never enqueues a job that depends on another."""
        return {}

    @classmethod
    def _take(cls, connection: Redis, key: str, timeout: int | None, fetch: dict[str, Any]) -> Any:
        """Move one job id from `key` to its intermediate list and fetch the job, or return None."""
        moved = cls.lmove(connection, key, timeout)
        if moved is None:
            return None
        queue_key, job_id = (part.decode() if isinstance(part, bytes) else part for part in moved)
        return cls._fetch_dequeued_job(connection, queue_key, job_id, **fetch)
