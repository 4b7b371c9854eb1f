"""The worker process: preload everything once, then supervise a child that runs RQ jobs in-process."""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable
from typing import Any

import redis
from PIL import Image
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.utils import now

import worker.ops  # noqa: F401 - imported once here, before the child is forked, so every job starts warm
import worker.tasks  # noqa: F401
from imgjobs import config
from imgjobs import storage as storages
from imgjobs.jobs import DEFAULT_QUALITY, MEDIA_TYPES, event_channel, queue_names
from imgjobs.storage import Storage
from worker import failures, imagefile
from worker.janitor import sweep
from worker.supervisor import Supervisor

log = logging.getLogger(__name__)
WORKER_TTL = 60  # a worker that misses its heartbeat for this long counts as dead
HARD_LIMIT_GRACE = 30  # seconds past a job's timeout before the supervisor kills the child


class ImageWorker(SimpleWorker):
    """An RQ worker that runs jobs in its own process, explains failures and tidies files."""

    storage: Storage

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        """Record the success, drop the upload, and wake anyone waiting on the job."""
        super().handle_job_success(job, queue, *args, **kwargs)
        tidy(self.storage.remove_upload, job.id)
        self.connection.publish(event_channel(job.id), "finished")

    def handle_job_failure(
        self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "", execution: Any = None
    ) -> None:
        """Record the failure, cancellation or retry; tidy files once it is final; wake waiters."""
        if job.meta.get("error", {}).get("code") == "canceled":
            self._stopped_job_id = job.id  # RQ then marks it stopped, never retried
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if job.get_status(refresh=True) not in ("queued", "scheduled", "deferred"):
            tidy(self.storage.remove, job.id)
            self.connection.publish(event_channel(job.id), "ended")

    def run_maintenance_tasks(self) -> None:
        """Besides RQ's own upkeep, delete files whose jobs have expired."""
        super().run_maintenance_tasks()
        try:
            sweep(self.storage, self.connection)
        except OSError as exc:
            log.warning("the janitor could not reach the storage, next round then: %s", exc)


def tidy(remove: Callable[[str], object], job_id: str) -> None:
    """Delete a job's files; when the store is unreachable, leave them to the janitor."""
    try:
        remove(job_id)
    except OSError as exc:
        log.warning("could not delete the files of job %s now: %s", job_id, exc)


def explain_failure(job: Job, exc_type: type, exc_value: BaseException, tb: Any) -> bool:
    """Store a readable error with the job; stop retries that cannot help."""
    error, retryable = failures.explain(exc_value, int(job.timeout) if job.timeout else None)
    job.meta["error"] = error
    job.save_meta()
    if not retryable:
        job.retries_left = 0
    return True  # go on to RQ's default handling


def child_name(pid: int) -> str:
    """Name the worker child after its host and pid, so the supervisor can find it in Redis."""
    return f"{socket.gethostname()}.{pid}"


def find_child(connection: redis.Redis, pid: int) -> ImageWorker | None:
    """Return the registered worker of a child, if it is still registered."""
    key = ImageWorker.redis_worker_namespace_prefix + child_name(pid)
    found = ImageWorker.find_by_key(key, connection=connection, serializer=JSONSerializer)
    return found if isinstance(found, ImageWorker) else None


def recover(connection: redis.Redis, queue: Queue, storage: Storage, pid: int, why: str) -> None:
    """Fail (or retry) the job a dead child was running, with the reason, and unregister the child."""
    try:
        _recover(connection, queue, storage, pid, why)
    except redis.RedisError as exc:  # Redis is down too: RQ's own cleanup fails the job later
        log.warning("could not record the death of worker child %d: %s", pid, exc)


def _recover(connection: redis.Redis, queue: Queue, storage: Storage, pid: int, why: str) -> None:
    """Do the work of `recover`."""
    dead = find_child(connection, pid)
    if dead is None:
        return
    job = dead.get_current_job()
    if job is not None:
        if why == "timeout":
            timeout = int(job.timeout) if job.timeout else None
            job.meta["error"] = failures.explain(JobTimeoutException("hard limit"), timeout)[0]
            job.retries_left = 0
        else:
            job.meta["error"] = failures.crashed(why)
        job.save_meta()
        job.ended_at = now()
        dead.storage = storage
        dead.handle_job_failure(job, queue, exc_string=f"The worker process running the job died: {why}")
    dead.register_death()


def overdue(connection: redis.Redis, pid: int) -> bool:
    """Tell whether the child's current job has run well past its timeout (stuck in C code)."""
    try:
        child = find_child(connection, pid)
    except redis.RedisError:
        return False  # cannot tell now; the child's own timeout still applies
    job = child.get_current_job() if child else None
    if job is None or job.started_at is None or not job.timeout or job.timeout < 0:
        return False
    return (now() - job.started_at).total_seconds() > job.timeout + HARD_LIMIT_GRACE


def warm_up(storage: Storage) -> None:
    """Load Pillow's plugins and codecs now, so no job pays for it."""
    Image.init()
    sample = storage.tmp / f"warm-up-{os.getpid()}"
    Image.new("RGB", (64, 64), "gray").save(sample, "JPEG")
    try:
        image = imagefile.load(sample, lambda size: (size[0] // 2, size[1] // 2))
        for fmt in MEDIA_TYPES:
            imagefile.save(image, sample.with_suffix("." + fmt), fmt, DEFAULT_QUALITY.get(fmt))
    finally:
        for path in sample.parent.glob(sample.name + "*"):
            path.unlink(missing_ok=True)
    gc.freeze()  # keep the collector off inherited objects, so the child copies fewer pages


def main() -> None:
    """Preload, then supervise one worker child on the configured queue until told to stop."""
    settings = config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Image.MAX_IMAGE_PIXELS = settings["MAX_PIXELS"]
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    storage = storages.from_config(settings)
    storage.ensure()
    warm_up(storage)

    def run_child() -> None:
        connection = redis.Redis.from_url(settings["REDIS_URL"])
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in queue_names(settings)]
        child = ImageWorker(
            queues,
            name=child_name(os.getpid()),
            connection=connection,
            serializer=JSONSerializer,
            exception_handlers=[explain_failure],
            worker_ttl=WORKER_TTL,
        )
        child.storage = storage
        child.work(max_jobs=settings["WORKER_MAX_JOBS"])

    connection = redis.Redis.from_url(settings["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
    queue = Queue(settings["QUEUE_NAME"], connection=connection, serializer=JSONSerializer)
    supervisor = Supervisor(
        run_child,
        on_death=lambda pid, why: recover(connection, queue, storage, pid, why),
        overdue=lambda pid: overdue(connection, pid),
    )
    sys.exit(supervisor.run())
