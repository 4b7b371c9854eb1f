"""`make dev` as a newcomer runs it: scripts/dev.sh brings up Redis, gunicorn and workers, and stops them all."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess

import pytest
import requests
from PIL import Image

from tests.conftest import ROOT, free_port, make_image, wait_until

pytestmark = pytest.mark.skipif(not (ROOT / ".venv/bin/gunicorn").exists(), reason="needs the venv `make` builds")


def listening(port: int) -> bool:
    """Tell whether something accepts connections on the port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ready(url: str) -> bool:
    """Tell whether the service answers /readyz with 200."""
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # gunicorn listens before its workers have booted
        return False


def test_dev_script_runs_the_service_and_stops_it_cleanly(tmp_path):
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PORT=str(port), REDIS_PORT=str(redis_port), WORKERS="2", DATA_DIR=str(tmp_path / "data"))
    script = subprocess.Popen(["bash", "scripts/dev.sh"], cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url), timeout=60, what="make dev to come up")
        assert requests.get(f"{url}/healthz").headers["Server"] == "nginx"  # the front, gunicorn behind it
        files = {"file": ("photo.png", make_image(size=(600, 400)), "image/png")}
        created = requests.post(f"{url}/api/v1/jobs", files=files, data={"ops": '[{"op":"resize","width":256}]'})
        assert created.status_code == 202, created.text
        job = requests.get(f"{url}{created.json()['links']['self']}?wait=20").json()
        assert job["status"] == "finished", job
        result = requests.get(f"{url}{job['links']['result']}")
        assert Image.open(io.BytesIO(result.content)).size == (256, 171)
        assert (tmp_path / "data/redis/appendonlydir").is_dir()  # the private Redis keeps its data under DATA_DIR
    finally:
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=60) == 0
    assert not listening(port) and not listening(redis_port)
    leftovers = subprocess.run(["pgrep", "-s", str(script.pid)], capture_output=True, text=True).stdout.split()
    described = subprocess.run(["ps", "-o", "pid,ppid,stat,cmd", "-p", ",".join(leftovers or ["0"])],
                               capture_output=True, text=True).stdout
    assert leftovers == [], described


def service_pids(session: int, pattern: str, *options: str) -> set[int]:
    """Return the pids of the session's live processes whose command line matches `pattern`.

    Zombies are left out: they have exited already, and the orphans among them (a killed
    gunicorn master's workers) are init's to reap, whenever it gets to them.
    """
    command = ["pgrep", "--runstates", "D,R,S,T,t", *options, "-s", str(session), "-f", pattern]
    return {int(pid) for pid in subprocess.run(command, capture_output=True, text=True).stdout.split()}


def test_dev_script_restarts_a_killed_worker_and_web_like_a_restart_policy(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PORT=str(port), REDIS_PORT=str(free_port()), WORKERS="1", DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        script = subprocess.Popen(["bash", "scripts/dev.sh"], cwd=ROOT, env=env, start_new_session=True,
                                  stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url), timeout=60, what="make dev to come up")
        for pattern in ("python -m worker$", "gunicorn --config"):  # the supervisor or master is the oldest
            before = wait_until(lambda p=pattern: service_pids(script.pid, p), what=pattern)
            [first] = service_pids(script.pid, pattern, "--oldest")
            os.kill(first, signal.SIGKILL)
            wait_until(lambda p=pattern, b=before: service_pids(script.pid, p) - b, timeout=30, what="a restart")
            assert f"(pid {first}) exited with status 137; restarting it" in log.read_text()
        wait_until(lambda: ready(url), timeout=60, what="the service to be back")
        created = requests.post(f"{url}/api/v1/jobs", files={"file": ("a.png", make_image(), "image/png")})
        assert requests.get(f"{url}{created.json()['links']['self']}?wait=20").json()["status"] == "finished"
        assert "imgjobs_redis_maxmemory_bytes 2.68435456e+08" in requests.get(f"{url}/metrics").text  # 256 MB
    finally:
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=60) == 0
    left = service_pids(script.pid, ".")
    described = subprocess.run(["ps", "-o", "pid,ppid,stat,cmd", "-p", ",".join(map(str, left or {0}))],
                               capture_output=True, text=True).stdout
    assert not left, described
