"""Trouble outside the code answers with JSON, fast, and loses nothing: a full disk, a full or hung Redis, a flood."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq.command import send_shutdown_command
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.conftest import make_image, submit
from tests.services import RedisServer, WebServer, WorkerProcess, service_env, wait_until
from tests.test_metrics import sample
from tests.test_uploads import error_of
from web import create_app, uploads

JOB = "/api/v1/jobs/" + "0" * 32


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """Mount a 30 MB tmpfs to fill up; unmount it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the full-disk test needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server this test may fill, pause or kill."""
    server = RedisServer(tmp_path)
    yield server
    server.process.send_signal(signal.SIGCONT)
    server.stop()


def fill(path: Path, leave_mb: float) -> None:
    """Write a file that leaves about `leave_mb` MB free on the file system of `path`."""
    (path / "filler").unlink(missing_ok=True)
    stats = os.statvfs(path)
    size = stats.f_bavail * stats.f_frsize - int(leave_mb * 1024 * 1024)
    (path / "filler").write_bytes(b"\0" * size)


def leftovers(data_dir: Path) -> list[Path]:
    """Return every file under the data directory except the filler."""
    return [p for p in data_dir.rglob("*") if p.is_file() and p.name != "filler"]


def test_full_disk_is_507_storage_full_keeps_no_partial_file_and_recovers(small_disk, redis_server):
    app = create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(small_disk), "MIN_FREE_MB": 0.02,
                      "QUEUE_NAME": "nobody-listens"})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    fill(small_disk, leave_mb=0.04)  # above the threshold, but too little for the next upload
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(os.urandom(60 * 1024)), "big.png")})
    response = client.post("/api/v1/jobs", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert error_of(response, 507)["code"] == "storage_full"
    assert response.headers["Retry-After"]
    assert not leftovers(small_disk)
    fill(small_disk, leave_mb=0.01)  # below the threshold: refused before the body is read
    assert error_of(submit(client, make_image(), []), 507)["code"] == "storage_full"
    assert error_of(client.get("/readyz"), 503)["code"] == "storage_full"
    assert not leftovers(small_disk)
    (small_disk / "filler").unlink()
    assert client.get("/readyz").status_code == 200
    assert submit(client, make_image(), []).status_code == 202


def test_a_flood_of_jobs_gets_503_queue_full_once_max_queued_wait(redis_server, data_dir, redis_client):
    redis_client.delete("rq:queue:flooded")
    app = create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "MAX_QUEUED": 3,
                      "QUEUE_NAME": "flooded"})
    client = app.test_client()
    for _ in range(3):
        assert submit(client, make_image(), []).status_code == 202
    uploads = len(list((data_dir / "uploads").iterdir()))
    response = submit(client, make_image(), [])
    assert error_of(response, 503)["code"] == "queue_full"
    assert response.headers["Retry-After"]
    assert len(list((data_dir / "uploads").iterdir())) == uploads


def test_redis_at_maxmemory_shows_in_readyz_metrics_and_answers_503(own_redis, data_dir):
    import redis

    app = create_app({"REDIS_URL": own_redis.url, "DATA_DIR": str(data_dir), "QUEUE_NAME": "full"})
    client = app.test_client()
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # below what it already uses: every write is refused
    try:
        uploads = len(list((data_dir / "uploads").iterdir()))
        response = submit(client, make_image(), [])
        assert error_of(response, 503)["code"] == "queue_full"
        assert response.headers["Retry-After"]
        assert len(list((data_dir / "uploads").iterdir())) == uploads
        assert error_of(client.get("/readyz"), 503)["code"] == "queue_full"
        text = client.get("/metrics").text
        assert sample(text, "imgjobs_redis_maxmemory_bytes") == 1
        assert sample(text, "imgjobs_redis_memory_used_bytes") > 1
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    assert client.get("/readyz").status_code == 200
    assert submit(client, make_image(), []).status_code == 202


@pytest.mark.timeout(30)  # with the old 5 s socket timeout and a retry this took 10 s a request, 60 s in all
def test_a_hung_redis_answers_503_on_every_endpoint_then_recovers(own_redis, data_dir):
    app = create_app({"REDIS_URL": own_redis.url, "DATA_DIR": str(data_dir), "QUEUE_NAME": "hung"})
    client = app.test_client()
    job_id = submit(client, make_image(), []).get_json()["id"]
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        for response in (submit(client, make_image(), []), client.get(f"/api/v1/jobs/{job_id}"),
                         client.get(f"/api/v1/jobs/{job_id}?wait=5"), client.get("/api/v1/jobs"),
                         client.delete(JOB), client.get("/readyz")):
            assert error_of(response, 503)["code"] == "queue_unavailable"
        assert client.get("/metrics").status_code == 200
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200


#: How long RQ's pub/sub thread in a worker child blocks in one read (`run_in_thread(sleep_time=60)`).
PUBSUB_READ = 60


@pytest.mark.timeout(240)
def test_a_workers_remote_commands_arrive_after_redis_hung_past_their_read_and_cut_them_off(own_redis, data_dir):
    connection = redis.Redis.from_url(own_redis.url)
    worker = WorkerProcess(service_env(own_redis.url, data_dir), connection, quiet=True)
    try:
        child = worker.job_process()
        own_redis.process.send_signal(signal.SIGSTOP)
        time.sleep(PUBSUB_READ + 10)  # the fault: a hang longer than the thread's read, so that read times out
        own_redis.process.send_signal(signal.SIGCONT)
        assert worker.job_process() == child  # the same child, not a fresh one that subscribed anew
        connection.client_kill_filter(_type="pubsub")  # and its connection cut, as a Redis restart would
        # RQ's remote commands reach a worker only through that thread: a shutdown ends the child.
        def obeyed() -> bool:
            send_shutdown_command(connection, worker.name)
            return child not in worker.children()
        wait_until(obeyed, timeout=60, what="the child to get the shutdown command through its pub/sub thread")
    finally:
        worker.kill_host()


def start_upload(connection: socket.socket) -> None:
    """Send a 5 MB upload's request head and over one of the web's 1 MB body reads of it, no more."""
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()
    connection.sendall(f"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {5 * 1024 * 1024}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
    connection.sendall(head + os.urandom(uploads.BODY_READ_BYTES + 64 * 1024))


def test_a_client_that_stops_sending_mid_upload_gets_a_400_and_leaves_no_partial_file(redis_server, tmp_path):
    data_dir = tmp_path / "data"
    web = WebServer(service_env(redis_server.url, data_dir), quiet=True)
    try:
        with socket.create_connection(("127.0.0.1", web.port)) as client:
            start_upload(client)
            client.shutdown(socket.SHUT_WR)  # and no more: the body ends 4 MB short
            client.settimeout(30)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        status, _, rest = answer.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b'"status":400' in rest and b"application/json" in rest
        assert not list((data_dir / "tmp").glob("upload-*")) and not list(data_dir.glob("uploads/*"))
    finally:
        web.stop()


def test_stopping_the_web_mid_upload_leaves_no_partial_file(redis_server, tmp_path):
    data_dir = tmp_path / "data"
    env = service_env(redis_server.url, data_dir, GUNICORN_CMD_ARGS="--graceful-timeout 1")
    web = WebServer(env, quiet=True)
    with socket.create_connection(("127.0.0.1", web.port)) as stalled:
        start_upload(stalled)  # then silence
        wait_until(lambda: list((data_dir / "tmp").glob("upload-*")), what="the partial upload on disk")
        web.stop()  # the stalled request outlives the grace period and its worker is killed
    assert not list((data_dir / "tmp").glob("upload-*"))
