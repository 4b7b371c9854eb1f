"""The worker process: preload everything once, then supervise a child that runs RQ jobs in-process."""

from __future__ import annotations

import gc
import logging
import os
import resource
import socket
import sys
import time
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
from rq.worker import DequeueStrategy, WorkerStatus

import worker.ops  # noqa: F401 - imported once here, before the child is forked, so every job starts warm
import worker.tasks  # noqa: F401
from imgjobs import config
from imgjobs import storage as storages
from imgjobs.jobs import DEFAULT_QUALITY, MEDIA_TYPES, TASK, event_channel, queue_names, stop_key
from imgjobs.storage import Storage
from worker import failures, imagefile, reaper
from worker.dequeue import SafeQueue
from worker.janitor import sweep
from worker.supervisor import Supervisor

log = logging.getLogger(__name__)
WORKER_TTL = 60  # a worker that misses its heartbeat for this long counts as dead
HARD_LIMIT_GRACE = 30  # seconds past a job's timeout before the supervisor kills the child
BEAT_SECONDS = 0.5  # a worker heartbeat this soon after the last one adds nothing


class ImageWorker(SimpleWorker):
    """An RQ worker that runs jobs in its own process, explains failures and tidies files."""

    storage: Storage
    lost_after: int  # seconds without a heartbeat before a running job counts as abandoned
    queue_class = SafeQueue  # several queues, and still no job lost between dequeue and start
    _idle_unsent = False  # the idle state is written with the next heartbeat
    _beaten_at = float("-inf")  # time.monotonic() of the last plain heartbeat

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Mark the job started and take it out of its queue's intermediate list, whatever the queue count."""
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Let a running job's registry entry lapse `lost_after` seconds after the last heartbeat."""
        return self.lost_after

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        """Record the success, drop the upload, and wake anyone waiting on the job."""
        super().handle_job_success(job, queue, *args, **kwargs)
        tidy(self.storage.remove_upload, job.id)
        self.connection.publish(event_channel(job.id), "finished")

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Note the job's end without RQ's job heartbeat write: the end-of-job transaction follows at once."""
        job.ended_at = now()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """Write the worker's state; "idle" waits for the heartbeat that always follows it (one round trip less)."""
        if pipeline is None and state == WorkerStatus.IDLE:
            self._state = state
            self._idle_unsent = True
            return
        self._idle_unsent = False
        super().set_state(state, pipeline)

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

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """Send RQ's heartbeat (three commands) and any unsent idle state in one round trip.

        RQ beats after every job, and again before and after every dequeue, a few milliseconds
        apart; a plain beat within BEAT_SECONDS of the last is skipped (the worker's key lives
        WORKER_TTL + 60 s).
        """
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline)
        idle = self._idle_unsent
        if timeout is None and not idle and time.monotonic() - self._beaten_at < BEAT_SECONDS:
            return None
        with self.connection.pipeline(transaction=False) as batch:
            if idle:
                super().set_state(WorkerStatus.IDLE, batch)
            super().heartbeat(timeout, batch)
            batch.execute()
        self._idle_unsent = False
        self._beaten_at = time.monotonic()
        return None

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job if it names the one task; refuse anything else without importing it."""
        if job.func_name == TASK:
            super().execute_job(job, queue)
            return
        reason = f"it names {job.func_name!r}; this worker runs only {TASK}"
        log.warning("refused job %s from queue %s: %s", job.id, queue.name, reason)
        job.meta["error"] = {"code": "refused_job", "message": f"The worker refused the job: {reason}."}
        job.save_meta()
        job.retries_left = 0
        job.ended_at = now()
        super().handle_job_failure(job, queue, exc_string=f"Refused: {reason}")  # it has no files to tidy

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
    """Return the registered worker of a child, if it is still registered.

    A child not registered yet is looked for without RQ's `find_by_key`, which removes a
    missing worker from `rq:workers`: polled while the child registers, that removal can land
    just after the child's own registration and unregister it for good (its health check then fails).
    """
    key = ImageWorker.redis_worker_namespace_prefix + child_name(pid)
    if not connection.exists(key):
        return None
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
        elif why == "canceled":
            job.meta["error"] = failures.explain(failures.JobCanceled(job.id))[0]
        else:
            job.meta["error"] = failures.crashed(why)
        job.save_meta()
        job.ended_at = now()
        dead.storage = storage
        # a retry goes back to the queue the job came from (the heavy one, say)
        origin = queue if job.origin == queue.name else Queue(job.origin, connection, serializer=JSONSerializer)
        dead.handle_job_failure(job, origin, exc_string=f"The worker process running the job died: {why}")
    dead.register_death()


class Watch:
    """What the supervisor checks every poll: its busy child's heartbeat, stuck or canceled jobs, lost jobs."""

    def __init__(self, connection: redis.Redis, queues: list[Queue], storage: Storage, lost_after: int) -> None:
        self.connection = connection
        self.queues = queues  # every queue the child serves: a lost heavy job is found like any other
        self.storage = storage
        self.lost_after = lost_after
        self.every = max(1.0, lost_after / 4)  # heartbeat and reaper period: several beats before a job lapses
        self.next_beat = self.next_reap = 0.0
        self.healthy_since: float | None = time.monotonic()

    def __call__(self, pid: int) -> str | None:
        """Return why the child must be killed now, or None; never raise on Redis trouble."""
        try:
            why = self._check(pid)
        except redis.RedisError:
            self.healthy_since = None  # cannot tell now; the child's own timeout still applies
            return None
        if self.healthy_since is None:
            self.healthy_since = time.monotonic()
        return why

    def _check(self, pid: int) -> str | None:
        """Beat for the child's job, say if it must die, and now and then reap other workers' lost jobs."""
        clock = time.monotonic()
        child = find_child(self.connection, pid)
        job = child.get_current_job() if child else None
        if child is not None and job is not None:
            if self.connection.exists(stop_key(job.id)):
                return "canceled"
            if overdue(job):
                return "timeout"
            execution = child.execution
            if clock >= self.next_beat and execution is not None:
                child.lost_after = self.lost_after
                child.maintain_heartbeats(job, execution)
                self.next_beat = clock + self.every
        # After a Redis outage every worker needs a beat to renew its jobs before anyone reaps.
        settled = self.healthy_since is not None and clock - self.healthy_since > 2 * self.every
        if settled and clock >= self.next_reap:
            for queue in self.queues:
                reaper.reap(queue, self.storage, self.every)
            self.next_reap = clock + self.every
        return None


def overdue(job: Job) -> bool:
    """Tell whether a running job has run well past its timeout (stuck in C code)."""
    if job.started_at is None or not job.timeout or job.timeout < 0:
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


def limit_memory(limit: int) -> None:
    """Cap this process's heap, so a job that needs more gets a MemoryError instead of the OOM killer."""
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


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
        limit_memory(config.memory_limit(settings))
        connection = redis.Redis.from_url(settings["REDIS_URL"])
        queues = [SafeQueue(name, connection=connection, serializer=JSONSerializer) for name in queue_names(settings)]
        SafeQueue.primary_key = queues[0].key  # normal jobs start at once on an idle worker
        child = ImageWorker(
            queues,
            name=child_name(os.getpid()),
            connection=connection,
            serializer=JSONSerializer,
            exception_handlers=[explain_failure],
            worker_ttl=WORKER_TTL,
        )
        child.storage = storage
        child.lost_after = settings["WORKER_LOST_AFTER"]
        child.work(max_jobs=settings["WORKER_MAX_JOBS"], dequeue_strategy=DequeueStrategy.ROUND_ROBIN)

    connection = redis.Redis.from_url(settings["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in queue_names(settings)]
    supervisor = Supervisor(
        run_child,
        on_death=lambda pid, why: recover(connection, queues[0], storage, pid, why),
        check=Watch(connection, queues, storage, settings["WORKER_LOST_AFTER"]),
    )
    sys.exit(supervisor.run())
