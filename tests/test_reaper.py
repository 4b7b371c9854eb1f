"""A job whose whole worker (supervisor and child) died is found by a surviving worker and retried or failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.conftest import finished, make_image, submit
from tests.services import WorkerProcess, service_env, wait_until
from tests.test_service import BIG, SLOW_STEPS, started

LOST_AFTER = 4  # seconds; the default is 20, and a lost job is found within 1.25x that


@pytest.fixture
def start_worker(redis_server, data_dir) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers on the queue "reaper"; stop them all afterwards."""
    connection = redis.Redis.from_url(redis_server.url)
    running: list[WorkerProcess] = []

    def start(lost_after: int = LOST_AFTER) -> WorkerProcess:
        env = service_env(redis_server.url, data_dir, QUEUE_NAME="reaper", WORKER_LOST_AFTER=lost_after)
        running.append(WorkerProcess(env, connection, quiet=True))
        return running[-1]

    yield start
    for process in running:
        process.stop()
        killed = Worker.find_by_key(Worker.redis_worker_namespace_prefix + process.name, connection=connection)
        if killed is not None:  # a killed host's registration would linger until its TTL: unlist it for later tests
            killed.register_death()
    connection.close()


def ended(client, job_id: str) -> dict | None:
    """Return the job once it has ended, else None after a long-poll."""
    job = client.get(f"/api/v1/jobs/{job_id}?wait=10").get_json()
    return job if job["status"] in ("finished", "failed", "canceled") else None


def run_until_its_host_dies(app, client, start_worker, retries: int, heavy: bool = False) -> str:
    """Start a slow job on one worker, start a second worker, then SIGKILL the first one's whole tree."""
    app.config.update(QUEUE_NAME="reaper", JOB_RETRIES=retries, HEAVY_PIXELS=1 if heavy else 10**12)
    doomed = start_worker()
    job_id = submit(client, BIG, SLOW_STEPS[:6]).get_json()["id"]
    started(client, job_id)
    start_worker()
    doomed.kill_host()
    return job_id


@pytest.mark.parametrize("heavy", [False, True], ids=["normal-queue", "heavy-queue"])
def test_job_of_a_dead_worker_host_is_retried_by_a_surviving_worker(app, client, start_worker, redis_client, heavy):
    job_id = run_until_its_host_dies(app, client, start_worker, retries=1, heavy=heavy)
    job = wait_until(lambda: ended(client, job_id), timeout=120, what="the job to end")  # found, then run again
    assert job["status"] == "finished", job
    found = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    assert found.retries_left == 0 and found.origin == ("reaper-heavy" if heavy else "reaper")


def test_job_of_a_dead_worker_host_fails_as_worker_lost_without_retries(app, client, start_worker, data_dir):
    job_id = run_until_its_host_dies(app, client, start_worker, retries=0)
    job = finished(client, job_id, wait=3 * LOST_AFTER)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "worker_lost"
    assert not list(data_dir.glob(f"*/{job_id}*"))


def test_a_live_worker_keeps_a_job_that_runs_longer_than_the_lost_limit(app, client, start_worker, redis_client):
    app.config.update(QUEUE_NAME="reaper", JOB_RETRIES=1)
    start_worker(lost_after=2)  # its own reaper would take the job after 2 s without the supervisor's heartbeats
    job_id = submit(client, BIG, SLOW_STEPS[:10]).get_json()["id"]  # about 10 s
    job = wait_until(lambda: ended(client, job_id), timeout=120, what="the job to end")
    assert job["status"] == "finished", job
    queue = Queue("reaper", connection=redis_client)
    wait_until(lambda: queue.count == 0 and not queue.started_job_registry.get_job_count(cleanup=False), what="idle")
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "finished"  # not requeued and run again


@pytest.mark.parametrize("queue", ["reaper", "reaper-heavy"])
def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_put_back(app, client, start_worker, redis_client,
                                                                         queue):
    app.config.update(QUEUE_NAME="reaper", HEAVY_PIXELS=1 if queue.endswith("heavy") else 10**12)
    job_id = submit(client, make_image(), []).get_json()["id"]  # no worker yet: it waits on its queue
    # what a worker leaves when it is killed between taking the job and starting it
    assert redis_client.lmove(f"rq:queue:{queue}", f"rq:queue:{queue}:intermediate") == job_id.encode()
    start_worker()
    job = wait_until(lambda: ended(client, job_id), timeout=120, what="the job to end")
    assert job["status"] == "finished", job
    assert redis_client.llen(f"rq:queue:{queue}:intermediate") == 0
