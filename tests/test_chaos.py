"""The chaos run (`make chaos`): 200 jobs at concurrency 8 through gunicorn while a worker child is killed,
a whole worker is killed and Redis restarts; every accepted job must end, finished or failed with a reason."""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from tests.conftest import make_image
from tests.services import RedisServer, WebServer, WorkerProcess, service_env, wait_until

pytestmark = pytest.mark.chaos

JOBS = 200
CONCURRENCY = 8
STEPS = '[{"op":"resize","width":900,"height":900,"fit":"fill"},{"op":"blur","radius":3},{"op":"stats"}]'
IMAGE = make_image(size=(800, 600))
FINAL = {"finished", "failed", "canceled"}


def submit(url: str, counts: collections.Counter[str]) -> str:
    """Submit one job, retrying (as a client should) while the service says 503 with Retry-After."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = requests.post(f"{url}/api/v1/jobs", files={"file": ("a.png", IMAGE, "image/png")},
                                     data={"ops": STEPS}, timeout=10)
        except requests.ConnectionError:
            counts["submit: connection error"] += 1
        else:
            if response.status_code == 202:
                return str(response.json()["id"])
            assert response.status_code == 503, response.text  # nothing but "try again" is acceptable
            counts[f"submit: 503 {response.json()['error']['code']}"] += 1
        time.sleep(0.5)
    raise AssertionError("the service refused a job for a minute")


def final_state(url: str, job_id: str, deadline: float) -> dict:
    """Long-poll a job until it ends or the deadline passes; return its last JSON."""
    body: dict = {}
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{url}/api/v1/jobs/{job_id}?wait=10", timeout=15)
        except requests.ConnectionError:
            time.sleep(0.5)
            continue
        if response.status_code == 503:
            time.sleep(0.5)
            continue
        body = response.json()
        if response.status_code == 404 or body.get("status") in FINAL:
            return body
    return body


def faults(redis_server: RedisServer, workers: list[WorkerProcess], env: dict[str, str],
           accepted: list[str], log: list[str]) -> None:
    """Kill a worker child, then a whole worker (starting a replacement), then restart Redis, as jobs flow."""
    connection = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: len(accepted) >= 40, timeout=120, what="40 accepted jobs")
    workers[0].kill_child()
    log.append("killed worker 1's child")
    wait_until(lambda: len(accepted) >= 90, timeout=120, what="90 accepted jobs")
    workers[1].kill_host()
    log.append("killed worker 2 (supervisor and child)")
    workers.append(WorkerProcess(env, connection, quiet=True))
    log.append("started worker 3")
    wait_until(lambda: len(accepted) >= 140, timeout=120, what="140 accepted jobs")
    connection.close()
    redis_server.restart()
    log.append("restarted Redis")


def test_chaos_every_job_ends_finished_or_failed_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    redis_server = RedisServer(tmp_path / "redis", appendonly=True)
    env = service_env(redis_server.url, tmp_path / "data", QUEUE_NAME="chaos", WORKER_LOST_AFTER=4, JOB_RETRIES=2)
    connection = redis.Redis.from_url(redis_server.url)
    workers = [WorkerProcess(env, connection, quiet=True) for _ in range(2)]
    connection.close()
    web = WebServer(env, quiet=True)
    counts: collections.Counter[str] = collections.Counter()
    accepted: list[str] = []
    log: list[str] = []
    chaos = threading.Thread(target=faults, args=(redis_server, workers, env, accepted, log), daemon=True)
    try:
        chaos.start()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            for job_id in pool.map(lambda _: submit(web.url, counts), range(JOBS)):
                accepted.append(job_id)
        chaos.join(timeout=120)
        deadline = time.monotonic() + 180
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            ends = list(pool.map(lambda job_id: final_state(web.url, job_id, deadline), accepted))
    finally:
        web.stop()
        for worker in workers:
            worker.stop()
        redis_server.stop()
    for end in ends:
        status = end.get("status", "lost")
        counts[f"{status}: {end['error']['code']}" if status == "failed" else status] += 1
    print(f"\nchaos run: {len(accepted)} jobs accepted; faults: {'; '.join(log)}")
    for what, count in sorted(counts.items()):
        print(f"  {count:4d}  {what}")
    assert log == ["killed worker 1's child", "killed worker 2 (supervisor and child)", "started worker 3",
                   "restarted Redis"]
    assert len(accepted) == JOBS
    stuck = [end for end in ends if end.get("status") not in FINAL]
    assert not stuck, f"{len(stuck)} jobs lost or stuck: {stuck[:3]}"
    failed = [end for end in ends if end["status"] == "failed"]
    assert all(end["error"]["code"] and end["error"]["message"] for end in failed)
