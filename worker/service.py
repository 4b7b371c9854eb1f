"""The RQ worker: preloads the ops, runs jobs in forked work-horses, announces job ends."""

from __future__ import annotations

import gc
import logging
import os
import time
import warnings
from typing import Any

import redis
from PIL import Image
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

import worker.ops  # noqa: F401 - imported once here, before any fork, so each job starts warm
import worker.tasks  # noqa: F401
from spec import config
from spec.jobs import DEFAULT_QUALITY, MEDIA_TYPES, event_channel
from spec.storage import Storage, is_job_id
from worker import failures, imagefile

log = logging.getLogger(__name__)
STALE_TMP_SECONDS = 3600
WORKER_TTL = 60  # a worker that misses its heartbeat for this long counts as dead


class ImageWorker(Worker):
    """An RQ worker that explains failures, retries only what can succeed, and tidies files."""

    storage: Storage

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        """Record the success, drop the upload, and wake anyone waiting on the job."""
        super().handle_job_success(job, queue, *args, **kwargs)
        self.storage.upload(job.id).unlink(missing_ok=True)
        self.connection.publish(event_channel(job.id), "finished")

    def handle_job_failure(
        self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "", execution: Any = None
    ) -> None:
        """Record the failure (or the retry), tidy files once it is final, and wake waiters."""
        stopped = self._stopped_job_id == job.id
        if "Work-horse terminated unexpectedly" in exc_string and not stopped:
            job.meta["error"] = failures.crashed(exc_string)
            job.save_meta()
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        final = job.get_status(refresh=True) not in ("queued", "scheduled", "deferred")
        if final:
            self.storage.remove(job.id)
            self.connection.publish(event_channel(job.id), "ended")

    def run_maintenance_tasks(self) -> None:
        """Besides RQ's own upkeep, delete files whose jobs have expired."""
        super().run_maintenance_tasks()
        sweep(self.storage, self.connection)


def explain_failure(job: Job, exc_type: type, exc_value: BaseException, tb: Any) -> bool:
    """Store a readable error with the job; stop retries that cannot help."""
    error, retryable = failures.explain(exc_value, int(job.timeout) if job.timeout else None)
    job.meta["error"] = error
    job.save_meta()
    if not retryable:
        job.retries_left = 0
    return True  # go on to RQ's default handling


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


def warm_up(storage: Storage) -> None:
    """Load Pillow's plugins and codecs now, so no forked work-horse pays for it again."""
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
    gc.freeze()  # keep the collector off inherited objects, so forks copy fewer pages


def main() -> None:
    """Run one worker on the configured queue until told to stop."""
    settings = config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Image.MAX_IMAGE_PIXELS = settings["MAX_PIXELS"]
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    storage = Storage(settings["DATA_DIR"])
    storage.ensure()
    warm_up(storage)
    connection = redis.Redis.from_url(settings["REDIS_URL"])
    queue = Queue(settings["QUEUE_NAME"], connection=connection, serializer=JSONSerializer)
    worker = ImageWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        exception_handlers=[explain_failure],
        worker_ttl=WORKER_TTL,
    )
    worker.storage = storage
    worker.work(with_scheduler=True)
