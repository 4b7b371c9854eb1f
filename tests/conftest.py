"""Fixtures: a private redis-server and S3 server, a real RQ worker process, the Flask app, sample images."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.services import ROOT, RedisServer, S3Server, WorkerProcess, free_port, service_env, wait_until
from web import create_app

# The whole suite is one client (127.0.0.1): per-client limits are off for it, and
# tests/test_limits.py turns them on with settings of its own. Subprocesses inherit this.
for _name, _value in {"RATE_LIMIT": "100000/minute", "JOBS_PER_CLIENT": "100000"}.items():
    os.environ.setdefault(_name, _value)

__all__ = ["ROOT", "free_port", "service_env", "wait_until"]

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        pytest.exit(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server; its credentials are in the environment, where boto3 looks for them."""
    try:
        server = S3Server(tmp_path_factory.mktemp("seaweedfs"), tmp_path_factory.mktemp("logs") / "weed.log")
    except RuntimeError as exc:
        pytest.exit(str(exc))
    patch = pytest.MonkeyPatch()
    for name, value in S3Server.ACCESS.items():
        patch.setenv(name, value)
    yield server
    patch.undo()
    server.stop()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


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
