"""The API and queue with STORAGE_URL=s3://...: every storage path against a real S3 server, no shared directory."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from imgjobs import storage
from imgjobs.storage import new_job_id
from tests.conftest import download, finished, make_image, submit
from tests.services import RedisServer, S3Server, WorkerProcess, free_port, service_env
from web import create_app
from worker.janitor import sweep

BUCKET, QUEUE = "api", "s3"


def files_under(directory: Path) -> list[str]:
    """Return every file under `directory` (scratch space must be left empty)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def worker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-host")


@pytest.fixture(scope="module")
def s3_worker(redis_server: RedisServer, s3_server: S3Server, worker_dir: Path) -> Iterator[WorkerProcess]:
    connection = redis.Redis.from_url(redis_server.url)
    env = service_env(redis_server.url, worker_dir, QUEUE_NAME=QUEUE, **s3_server.settings(BUCKET))
    process = WorkerProcess(env, connection)
    yield process
    process.stop()
    connection.close()


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    return tmp_path / "web-host"


@pytest.fixture
def s3_app(redis_server: RedisServer, s3_server: S3Server, web_dir: Path) -> Iterator[Flask]:
    settings = s3_server.settings(BUCKET)
    app = create_app({"TESTING": True, "REDIS_URL": redis_server.url, "DATA_DIR": str(web_dir), "QUEUE_NAME": QUEUE,
                      "JOB_TIMEOUT": 30, **settings})
    yield app
    app.extensions["redis"].close()


@pytest.fixture
def s3_client(s3_app: Flask) -> FlaskClient:
    return s3_app.test_client()


def keys(s3_server: S3Server) -> set[str]:
    """Return every object key in the API's bucket."""
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def same_job_locally(data: bytes, ops: list, tmp_path: Path) -> bytes:
    """Run the same job through the worker's pipeline on local files, for comparison."""
    from worker import pipeline

    source, result = tmp_path / "in", tmp_path / "out.png"
    source.write_bytes(data)
    pipeline.process(source, result, {"ops": ops, "format": "png", "quality": None})
    return result.read_bytes()


@pytest.mark.usefixtures("s3_worker")
def test_a_job_goes_through_the_object_store_and_leaves_no_local_file(s3_client, s3_server, web_dir, worker_dir,
                                                                      tmp_path):
    data, ops = make_image(size=(300, 200)), [{"op": "resize", "width": 120}, {"op": "sepia"}]
    job_id = submit(s3_client, data, ops).get_json()["id"]
    assert finished(s3_client, job_id)["status"] == "finished"
    assert keys(s3_server) >= {f"jobs/results/{job_id}.png"}
    assert f"jobs/uploads/{job_id}" not in keys(s3_server)  # dropped once the job ended
    response = download(s3_client, f"/api/v1/jobs/{job_id}/result")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data == same_job_locally(data, ops, tmp_path)  # same bytes as on a shared directory
    assert int(response.headers.get("Content-Length", -1)) == len(response.data), dict(response.headers)
    assert Image.open(io.BytesIO(response.data)).size == (120, 80)
    assert files_under(web_dir) == [] and files_under(worker_dir) == []


@pytest.mark.usefixtures("s3_worker")
def test_result_redirect_answers_with_a_presigned_url(s3_app, s3_client):
    s3_app.config["RESULT_REDIRECT"] = 1
    job_id = submit(s3_client, make_image(), [], filename="holiday.png").get_json()["id"]
    assert finished(s3_client, job_id)["status"] == "finished"
    response = s3_client.get(f"/api/v1/jobs/{job_id}/result")
    assert response.status_code == 302
    fetched = requests.get(response.headers["Location"], timeout=10)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "PNG"
    assert "holiday.png" in fetched.headers["Content-Disposition"]


def test_cancel_of_a_queued_job_deletes_its_upload_object(s3_app, s3_client, s3_server):
    s3_app.config["QUEUE_NAME"] = "s3-nobody-listens"
    job_id = submit(s3_client, make_image(), []).get_json()["id"]
    assert f"jobs/uploads/{job_id}" in keys(s3_server)
    assert s3_client.delete(f"/api/v1/jobs/{job_id}").status_code == 200
    assert not {k for k in keys(s3_server) if job_id in k}


@pytest.mark.usefixtures("s3_worker")
def test_delete_of_a_finished_job_deletes_its_result_object(s3_client, s3_server):
    job_id = submit(s3_client, make_image(), []).get_json()["id"]
    assert finished(s3_client, job_id)["status"] == "finished"
    assert s3_client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert not {k for k in keys(s3_server) if job_id in k}


@pytest.mark.usefixtures("s3_worker")
def test_a_result_deleted_from_the_store_is_404_expired(s3_client, s3_server):
    job_id = submit(s3_client, make_image(), []).get_json()["id"]
    assert finished(s3_client, job_id)["status"] == "finished"
    s3_server.client().delete_object(Bucket=BUCKET, Key=f"jobs/results/{job_id}.png")
    response = s3_client.get(f"/api/v1/jobs/{job_id}/result")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "result_expired"


@pytest.mark.usefixtures("s3_worker")
def test_a_job_whose_upload_vanished_fails_with_a_storage_error(s3_app, s3_client, s3_server, redis_client):
    s3_app.config.update(QUEUE_NAME="s3-held", JOB_RETRIES=0)
    job_id = submit(s3_client, make_image(), []).get_json()["id"]
    s3_server.client().delete_object(Bucket=BUCKET, Key=f"jobs/uploads/{job_id}")
    redis_client.rename("rq:queue:s3-held", f"rq:queue:{QUEUE}")  # now hand it to the worker
    job = finished(s3_client, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "storage_error", job


def test_an_unreachable_store_is_503_and_queues_and_keeps_nothing(redis_server, redis_client, tmp_path):
    dead = {"STORAGE_URL": "s3://api/jobs", "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    app = create_app({"TESTING": True, "REDIS_URL": redis_server.url, "DATA_DIR": str(tmp_path),
                      "QUEUE_NAME": "s3-dead", **dead})
    client = app.test_client()
    response = submit(client, make_image(), [])
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    assert redis_client.llen("rq:queue:s3-dead") == 0
    assert files_under(tmp_path) == []
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["error"]["code"] == "storage_unavailable"
    app.extensions["redis"].close()


def test_readyz_checks_the_bucket(s3_client):
    assert s3_client.get("/readyz").get_json() == {"status": "ready"}


def test_the_janitor_deletes_objects_of_expired_jobs_only(s3_app, s3_client, s3_server, redis_client):
    s3_app.config["QUEUE_NAME"] = "s3-nobody-listens"
    live = submit(s3_client, make_image(), []).get_json()["id"]
    gone = new_job_id()
    client = s3_server.client()
    client.put_object(Bucket=BUCKET, Key=f"jobs/uploads/{gone}", Body=b"x")
    client.put_object(Bucket=BUCKET, Key=f"jobs/results/{gone}.png", Body=b"x")
    backend = storage.from_config(s3_app.config)
    assert sweep(backend, redis_client) == 0  # written just now: maybe an upload whose job is being queued
    assert sweep(backend, redis_client, grace=0) == 2
    assert f"jobs/uploads/{live}" in keys(s3_server)
    assert not {k for k in keys(s3_server) if gone in k}
