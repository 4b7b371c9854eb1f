"""Fixtures: a private redis-server, a real RQ worker process, the Flask app, sample images."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from rq import Worker

from web import create_app

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy, or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class RedisServer:
    """A private redis-server on a free port, in its own directory."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.exit("redis-server is not installed: run `make test` (it installs it) or apt-get install redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), what="redis-server to start")
        client.close()

    def stop(self) -> None:
        """Stop the server and wait for it."""
        self.process.terminate()
        self.process.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    """Tell whether Redis answers."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def service_env(redis_url: str, data_dir: Path, **extra: Any) -> dict[str, str]:
    """Return the environment a web or worker process of the test service runs with."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATA_DIR": str(data_dir), "JOB_TIMEOUT": "30"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """A real `python -m worker` process, as the service runs it."""

    def __init__(self, env: dict[str, str], connection: redis.Redis) -> None:
        self.connection = connection
        before = {w.name for w in Worker.all(connection=connection)}
        self.process = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)
        self.name = wait_until(lambda: self._registered(before), what="the worker to register")

    def _registered(self, before: set[str]) -> str | None:
        """Return this worker's RQ name once it is registered."""
        for w in Worker.all(connection=self.connection):
            if w.name not in before and w.pid == self.process.pid:
                return w.name
        return None

    def horse_pid(self) -> int:
        """Return the pid of the work-horse running the current job."""
        def child() -> int | None:
            out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
            pids = [int(p) for p in out.split()]
            for pid in pids:  # the scheduler is a child too; the horse runs in its own process group
                if os.getpgid(pid) == pid:
                    return pid
            return None
        return int(wait_until(child, what="a work-horse"))

    def stop(self) -> None:
        """Ask for a warm shutdown and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def worker(redis_server: RedisServer, data_dir: Path) -> Iterator[WorkerProcess]:
    connection = redis.Redis.from_url(redis_server.url)
    process = WorkerProcess(service_env(redis_server.url, data_dir), connection)
    yield process
    process.stop()
    connection.close()


@pytest.fixture
def app(redis_server: RedisServer, data_dir: Path) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "JOB_TIMEOUT": 30})
    yield app
    app.extensions["redis"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def make_image(mode: str = "RGB", size: tuple[int, int] = (64, 48), fmt: str = "PNG", **save: Any) -> bytes:
    """Return an encoded image with a gradient, so resampling and stats have something to see."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    if mode in ("RGB", "RGBA"):
        bands = [gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("L", size, 90)]
        image = Image.merge("RGB", bands)
        if mode == "RGBA":
            image.putalpha(Image.linear_gradient("L").resize(size).rotate(90))
    else:
        image = gradient.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def submit(client: FlaskClient, data: bytes, ops: Any = None, filename: str = "photo.png", **form: Any) -> Any:
    """POST a job and return the response."""
    import json

    fields: dict[str, Any] = {"file": (io.BytesIO(data), filename), **form}
    if ops is not None:
        fields["ops"] = ops if isinstance(ops, str) else json.dumps(ops)
    return client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data")


def finished(client: FlaskClient, job_id: str, wait: int = 20) -> dict[str, Any]:
    """Long-poll a job until it ends and return its JSON."""
    body = client.get(f"/api/v1/jobs/{job_id}?wait={wait}").get_json()
    assert body["status"] in ("finished", "failed", "canceled"), body
    return body


def download(client: FlaskClient, url: str) -> Any:
    """GET a file response, read it whole and close it (send_file keeps the file open until then)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response
