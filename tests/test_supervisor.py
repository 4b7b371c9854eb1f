"""The supervisor keeps a worker child alive, replaces dead ones, kills stuck ones, and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.conftest import ROOT, finished, make_image, submit, wait_until
from tests.services import WorkerProcess, service_env

SCRIPT = """
import os, signal, sys, time
from worker.supervisor import Supervisor
mode = sys.argv[1]
starts = []

def run_child():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("child", os.getpid(), flush=True)
    if mode == "recycle" and len(starts) < 3:
        return  # a clean exit, as after WORKER_MAX_JOBS
    time.sleep(60)

def on_death(pid, why):
    print("died", pid, why, flush=True)

def check(pid):
    # only the first child gets stuck, a second after it started
    if mode == "stuck" and len(starts) == 1 and time.monotonic() - starts[0] > 1:
        return "timeout"
    return None

class Counting(Supervisor):
    def _fork(self):
        starts.append(time.monotonic())
        return super()._fork()

sys.exit(Counting(run_child, on_death, check).run())
"""


@contextmanager
def supervise(mode: str) -> Iterator[subprocess.Popen[str]]:
    """Run a supervisor over a dummy child in `mode`; kill it afterwards."""
    command = [sys.executable, "-c", textwrap.dedent(SCRIPT), mode]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            yield process
        finally:
            process.terminate()  # the supervisor stops its child too
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def read_lines(process: subprocess.Popen[str], count: int) -> list[list[str]]:
    """Read `count` lines the supervised script printed."""
    assert process.stdout is not None
    return [process.stdout.readline().split() for _ in range(count)]


def test_a_killed_child_is_reported_and_replaced():
    with supervise("normal") as process:
        [(_, first)] = read_lines(process, 1)
        subprocess.run(["kill", "-KILL", first], check=True)
        died, second = read_lines(process, 2)
        assert died == ["died", first, "killed", "by", "signal", "9"]
        assert second[0] == "child" and second[1] != first
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_a_child_stuck_past_its_limit_is_killed_as_a_timeout():
    with supervise("stuck") as process:
        first, died, second = read_lines(process, 3)
        assert died == ["died", first[1], "timeout"]
        assert second[0] == "child"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_a_child_that_exits_cleanly_is_restarted():
    with supervise("recycle") as process:
        lines = read_lines(process, 3)
        assert [line[0] for line in lines] == ["child", "child", "child"]  # no "died": recycling is normal
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.fixture
def own_worker(redis_server, data_dir):
    connection = redis.Redis.from_url(redis_server.url)
    process = WorkerProcess(service_env(redis_server.url, data_dir, QUEUE_NAME="own"), connection)
    yield process
    process.stop()
    connection.close()


def test_sigterm_lets_the_running_job_finish(app, client, own_worker):
    from tests.test_service import BIG, SLOW_STEPS, started

    app.config["QUEUE_NAME"] = "own"
    job_id = submit(client, BIG, SLOW_STEPS[:6]).get_json()["id"]
    started(client, job_id)
    own_worker.process.send_signal(signal.SIGTERM)
    assert own_worker.process.wait(timeout=60) == 0
    assert finished(client, job_id, wait=1)["status"] == "finished"


def test_worker_child_is_recycled_after_its_job_quota(app, client, redis_server, data_dir):
    connection = redis.Redis.from_url(redis_server.url)
    env = service_env(redis_server.url, data_dir, QUEUE_NAME="quota", WORKER_MAX_JOBS=2)
    process = WorkerProcess(env, connection)
    try:
        app.config["QUEUE_NAME"] = "quota"
        first = process.job_process()
        for _ in range(2):
            assert finished(client, submit(client, make_image(), []).get_json()["id"])["status"] == "finished"
        second = wait_until(lambda: next((p for p in process.children() if p != first), None), what="a new child")
        assert second != first
        assert finished(client, submit(client, make_image(), []).get_json()["id"])["status"] == "finished"
    finally:
        process.stop()
        connection.close()
