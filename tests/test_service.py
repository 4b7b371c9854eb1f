"""The worker under trouble: killed work-horses, timeouts, stops, retries, expired files, health."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from imgjobs.catalog import TooManyPixels
from imgjobs.storage.local import LocalStorage
from tests.conftest import finished, make_image, submit, wait_until
from worker import failures, health
from worker.imagefile import ImageError
from worker.service import sweep

#: About 20 heavy resizes of a 2000 px image: several seconds of work, so a test can catch it running.
SLOW_STEPS = [
    {"op": "resize", "width": 3000, "height": 3000, "fit": "fill"},
    {"op": "resize", "width": 2900, "height": 2900, "fit": "fill"},
] * 10
BIG = make_image(size=(2000, 2000))


def started(client, job_id: str) -> None:
    """Wait until the worker has picked up the job."""
    wait_until(lambda: client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "started", what="job start")


def test_killed_worker_child_fails_the_job_with_a_reason_and_a_new_child_goes_on(app, client, worker):
    app.config["JOB_RETRIES"] = 0
    job_id = submit(client, BIG, SLOW_STEPS).get_json()["id"]
    started(client, job_id)
    os.kill(worker.job_process(), signal.SIGKILL)
    job = finished(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "worker_crashed"
    assert "signal 9" in job["error"]["message"]
    assert worker.process.poll() is None
    assert finished(client, submit(client, make_image(), []).get_json()["id"])["status"] == "finished"


def test_job_of_a_killed_worker_child_is_retried_and_then_succeeds(app, client, worker, redis_client):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    app.config["JOB_RETRIES"] = 1
    job_id = submit(client, BIG, SLOW_STEPS[:4]).get_json()["id"]
    started(client, job_id)
    os.kill(worker.job_process(), signal.SIGKILL)
    wait_until(lambda: client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] != "started", what="the kill")
    job = finished(client, job_id, wait=30)
    assert job["status"] == "finished", job
    assert Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer).retries_left == 0


def test_timeout_fails_the_job_without_retry(app, client):
    app.config.update(JOB_TIMEOUT=1, JOB_RETRIES=2)
    job = finished(client, submit(client, BIG, SLOW_STEPS).get_json()["id"], wait=30)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout" and "1 s" in job["error"]["message"]


def test_delete_stops_a_running_job_and_removes_its_files(client, worker, data_dir):
    job_id = submit(client, BIG, SLOW_STEPS).get_json()["id"]
    started(client, job_id)
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "canceled"
    assert finished(client, job_id)["status"] == "canceled"
    assert not list(data_dir.glob(f"*/{job_id}*"))
    assert worker.process.poll() is None
    assert finished(client, submit(client, make_image(), []).get_json()["id"])["status"] == "finished"


def test_delete_stops_a_job_inside_one_long_step(client, worker, data_dir):
    long_step = [{"op": "denoise", "size": 7}]  # about 15 s in one C call on 16 MP
    job_id = submit(client, make_image(size=(4000, 4000)), long_step).get_json()["id"]
    started(client, job_id)
    response = client.delete(f"/api/v1/jobs/{job_id}")  # waits at most 2 s for the stop
    assert response.get_json()["status"] == "canceled"
    assert not list(data_dir.glob(f"*/{job_id}*"))
    assert worker.process.poll() is None
    assert finished(client, submit(client, make_image(), []).get_json()["id"])["status"] == "finished"


def test_sweep_deletes_files_of_expired_jobs_only(tmp_path, client, redis_client):
    storage = LocalStorage(tmp_path)
    storage.ensure()
    client.application.config["QUEUE_NAME"] = "nobody-listens"
    live = submit(client, make_image(), []).get_json()["id"]
    storage.upload(live).write_bytes(b"kept")
    gone = "f" * 32
    storage.upload(gone).write_bytes(b"x")
    storage.result(gone, "png").write_bytes(b"x")
    stale = storage.tmp / "upload-abandoned"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = storage.tmp / "upload-in-progress"
    fresh.write_bytes(b"x")

    queueing = "e" * 32  # an upload the web has stored but not yet queued
    storage.upload(queueing).write_bytes(b"x")
    for path in (storage.upload(gone), storage.result(gone, "png")):
        os.utime(path, (time.time() - 600, time.time() - 600))

    assert sweep(storage, redis_client) == 3
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted([live, queueing, "upload-in-progress"])


@pytest.mark.parametrize(
    ("exc", "code", "retry"),
    [
        (ImageError("the image could not be decoded: broken data stream"), "undecodable_image", False),
        (ValueError("radius must be positive"), "invalid_step", False),
        (MemoryError(), "out_of_memory", False),
        (TooManyPixels(2, None, "step 2 (pad) would make a 32769x32769 image"), "too_many_pixels", False),
        (OSError(28, "No space left on device"), "storage_error", True),
        (RuntimeError("boom"), "job_failed", True),
    ],
)
def test_failures_are_explained_and_retried_only_when_useful(exc, code, retry):
    error, retryable = failures.explain(exc, timeout=60)
    assert error["code"] == code and error["message"].endswith(".")
    assert retryable is retry


def test_worker_health_sees_the_live_worker_on_this_host(worker, redis_client):
    [name] = health.alive_here(redis_client, socket.gethostname())  # one live child; dead ones unregistered
    assert name == f"{socket.gethostname()}.{worker.job_process()}"
    assert health.alive_here(redis_client, "some-other-host") == []


def test_looking_for_an_unregistered_child_never_unregisters_it(redis_client):
    """The supervisor polls for its child while the child registers: the lookup must not touch `rq:workers`.

    RQ's own lookup removes a worker whose key it does not find; landing just after the
    child's registration (key and set member in one step), that removal left a live worker
    out of the set for good, and its container unhealthy (seen in a swarm rolling update).
    """
    from worker.service import child_name, find_child

    pid = 999_999
    member = f"rq:worker:{child_name(pid)}"
    redis_client.sadd("rq:workers", member)  # as if registered after the lookup's EXISTS, before its SREM
    try:
        assert find_child(redis_client, pid) is None
        assert redis_client.sismember("rq:workers", member)
    finally:
        redis_client.srem("rq:workers", member)


def test_worker_health_command_fails_without_redis(monkeypatch, capsys):
    from tests.conftest import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert health.main() == 1
    assert "redis unreachable" in capsys.readouterr().out


def test_readyz_and_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_reports_unwritable_data_dir(app, client, tmp_path):
    blocked = tmp_path / "data"
    app.config["DATA_DIR"] = str(blocked)
    blocked.mkdir()
    (blocked / "tmp").write_text("a file where the tmp directory should be")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "storage_unavailable"



def test_recover_fails_a_stuck_job_as_a_timeout_without_retry(app, client, redis_server, data_dir, redis_client):
    from rq import Queue
    from rq.serializers import JSONSerializer

    from tests.services import WorkerProcess, service_env
    from worker.service import recover

    process = WorkerProcess(service_env(redis_server.url, data_dir, QUEUE_NAME="stuck"), redis_client)
    try:
        app.config.update(QUEUE_NAME="stuck", JOB_RETRIES=2)
        job_id = submit(client, BIG, SLOW_STEPS).get_json()["id"]
        started(client, job_id)
        child = process.job_process()
        os.kill(child, signal.SIGSTOP)  # frozen mid-job, as if stuck in C code
        queue = Queue("stuck", connection=redis_client, serializer=JSONSerializer)
        recover(redis_client, queue, LocalStorage(data_dir), child, "timeout")
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        assert job["status"] == "failed"
        assert job["error"]["code"] == "timeout"
        os.kill(child, signal.SIGKILL)
    finally:
        process.stop()


@pytest.fixture
def image_worker(redis_client):
    """An ImageWorker registered in Redis, not working (its methods are called one by one)."""
    from rq.serializers import JSONSerializer

    from worker.dequeue import SafeQueue
    from worker.service import ImageWorker

    queue = SafeQueue("beats", connection=redis_client, serializer=JSONSerializer)
    child = ImageWorker([queue], name=f"beats-{os.getpid()}", connection=redis_client, serializer=JSONSerializer)
    child.register_birth()
    yield child
    child.register_death()


def test_the_idle_state_goes_out_with_the_next_heartbeat(image_worker, redis_client):
    image_worker.set_state("busy")
    assert redis_client.hget(image_worker.key, "state") == b"busy"
    image_worker.set_state("idle")
    assert redis_client.hget(image_worker.key, "state") == b"busy"  # not yet: RQ beats right after
    assert image_worker.get_state() == "idle"
    image_worker.heartbeat()
    assert redis_client.hget(image_worker.key, "state") == b"idle"


def test_a_heartbeat_right_after_another_is_skipped_unless_it_carries_news(image_worker, redis_client, monkeypatch):
    import worker.service

    monkeypatch.setattr(worker.service, "BEAT_SECONDS", 3600.0)  # every beat counts as "right after" the last
    image_worker.heartbeat()
    redis_client.hdel(image_worker.key, "last_heartbeat")
    image_worker.heartbeat()
    assert redis_client.hget(image_worker.key, "last_heartbeat") is None  # skipped
    image_worker.heartbeat(timeout=90)  # an explicit TTL always goes out
    assert redis_client.hget(image_worker.key, "last_heartbeat") is not None
    redis_client.hdel(image_worker.key, "last_heartbeat")
    image_worker.set_state("idle")
    image_worker.heartbeat()  # so does a beat carrying the idle state
    assert redis_client.hget(image_worker.key, "last_heartbeat") is not None
    assert redis_client.hget(image_worker.key, "state") == b"idle"


def test_a_heartbeat_after_the_pause_goes_out(image_worker, redis_client, monkeypatch):
    import worker.service

    monkeypatch.setattr(worker.service, "BEAT_SECONDS", 0.0)
    image_worker.heartbeat()
    redis_client.hdel(image_worker.key, "last_heartbeat")
    image_worker.heartbeat()
    assert redis_client.hget(image_worker.key, "last_heartbeat") is not None
