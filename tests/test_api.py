"""The API end to end: the Flask app, a real Redis and a real RQ worker process."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from werkzeug.test import EnvironBuilder

from tests.conftest import download, finished, make_image, submit, wait_until
from tests.images import encode
from web import uploads

pytestmark = pytest.mark.usefixtures("worker")


def test_upload_resize_and_download(client):
    response = submit(client, make_image(size=(400, 300)), [{"op": "resize", "width": 100}], filename="Holiday.png")
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert body["ops"] == [{"op": "resize", "width": 100, "height": None, "fit": "inside", "filter": "lanczos"}]
    assert body["links"]["result"] == f"/api/v1/jobs/{body['id']}/result"

    job = finished(client, body["id"])
    assert job["status"] == "finished", job
    assert job["progress"] == 1.0
    assert job["result"]["width"] == 100 and job["result"]["height"] == 75
    assert job["input"] == {"format": "PNG", "width": 400, "height": 300, "mode": "RGB", "frames": 1,
                            "bytes": job["input"]["bytes"], "filename": "Holiday.png"}
    assert job["started_at"] and job["ended_at"] and job["created_at"] <= job["ended_at"]

    result = download(client, body["links"]["result"])
    assert result.status_code == 200
    assert result.mimetype == "image/png"
    assert 'filename=Holiday.png' in result.headers["Content-Disposition"]
    assert len(result.data) == job["result"]["bytes"]
    image = Image.open(io.BytesIO(result.data))
    assert image.size == (100, 75) and image.mode == "RGB"


def test_grayscale_then_stats_reports_analysis(client):
    ops = [{"op": "grayscale"}, {"op": "stats"}]
    job = finished(client, submit(client, make_image(size=(32, 32)), ops).get_json()["id"])
    assert job["status"] == "finished", job
    [analysis] = job["result"]["analysis"]
    assert analysis["step"] == 2 and analysis["op"] == "stats"
    assert list(analysis["output"]["channels"]) == ["L"]
    assert sum(analysis["output"]["channels"]["L"]["histogram"]) == 32 * 32
    image = Image.open(io.BytesIO(download(client, job["links"]["result"]).data))
    assert image.mode == "L"


def test_no_ops_reencodes_and_format_conversion(client):
    job = finished(client, submit(client, make_image(mode="RGBA"), None, format="webp", quality="90").get_json()["id"])
    assert job["result"]["format"] == "webp" and job["result"]["media_type"] == "image/webp"
    result = download(client, job["links"]["result"])
    assert result.mimetype == "image/webp"
    assert Image.open(io.BytesIO(result.data)).mode == "RGBA"


def test_non_web_format_defaults_to_png(client):
    job = finished(client, submit(client, make_image(fmt="BMP"), [], filename="scan.bmp").get_json()["id"])
    assert job["format"] == "png" and job["result"]["format"] == "png"


def test_progress_advances_per_step(client, redis_client):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    steps = [{"op": "resize", "width": 64}, {"op": "grayscale"}, {"op": "stats"}]
    job_id = submit(client, make_image(size=(300, 200)), steps).get_json()["id"]
    finished(client, job_id)
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    # the worker stores progress after each step; the last stored value is the final step's
    assert job.meta["progress"] == pytest.approx(3 / 4)


def test_wait_returns_once_the_job_ends(client):
    job_id = submit(client, make_image(), [{"op": "grayscale"}]).get_json()["id"]
    assert client.get(f"/api/v1/jobs/{job_id}?wait=30").get_json()["status"] == "finished"


def test_result_before_finish_is_409(client, redis_client):
    from rq import Queue

    # a queue no worker listens on keeps the job queued
    app_client = client
    app_client.application.config["QUEUE_NAME"] = "nobody-listens"
    job_id = submit(app_client, make_image(), []).get_json()["id"]
    response = app_client.get(f"/api/v1/jobs/{job_id}/result")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "job_not_finished"
    Queue("nobody-listens", connection=redis_client).empty()


def test_cancel_a_queued_job_removes_its_files(client, data_dir):
    client.application.config["QUEUE_NAME"] = "nobody-listens"
    job_id = submit(client, make_image(), []).get_json()["id"]
    assert (data_dir / "uploads" / job_id).exists()
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "canceled"
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "canceled"
    assert not (data_dir / "uploads" / job_id).exists()


def test_delete_a_finished_job_removes_it(client, data_dir):
    job_id = submit(client, make_image(), []).get_json()["id"]
    finished(client, job_id)
    assert (data_dir / "results" / f"{job_id}.png").exists()
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert not (data_dir / "results" / f"{job_id}.png").exists()


def test_list_is_newest_first_and_paginated(client):
    ids = [submit(client, make_image(), []).get_json()["id"] for _ in range(3)]
    page = client.get("/api/v1/jobs?per_page=2").get_json()
    assert [job["id"] for job in page["jobs"]] == ids[::-1][:2]
    assert page["total"] >= 3 and "next" in page["links"]
    second = client.get(page["links"]["next"]).get_json()
    assert second["jobs"][0]["id"] == ids[0]


def test_ops_catalogue_lists_parameters(client):
    body = client.get("/api/v1/ops").get_json()
    ops = {op["name"]: op for op in body["ops"]}
    assert {"resize", "grayscale", "stats"} <= set(ops)
    width = next(p for p in ops["resize"]["params"] if p["name"] == "width")
    assert width == {"name": "width", "type": "int", "description": "Target width in pixels.", "required": False,
                     "minimum": 1, "maximum": 16384}
    assert ops["stats"]["analysis"] is True
    assert body["formats"] == ["png", "jpeg", "webp"]
    assert body["limits"] == {"max_upload_mb": 25.0, "max_pixels": 50_000_000, "max_dimension": 16384}


def test_bad_image_fails_its_job_and_the_worker_goes_on(client, data_dir, redis_client):
    """A file that passed validation but broke on disk fails with a reason; the next job succeeds."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    client.application.config["QUEUE_NAME"] = "held"
    job_id = submit(client, make_image(size=(200, 200)), []).get_json()["id"]
    upload = data_dir / "uploads" / job_id
    upload.write_bytes(upload.read_bytes()[:300])  # damage it after validation
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    from rq import Queue

    Queue("held", connection=redis_client, serializer=JSONSerializer).remove(job)
    Queue("images", connection=redis_client, serializer=JSONSerializer).enqueue_job(job)
    client.application.config["QUEUE_NAME"] = "images"

    body = finished(client, job_id)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "undecodable_image"
    assert "could not be" in body["error"]["message"]
    # the worker removes the upload right after it records the failure, which a long-poll may see first
    wait_until(lambda: not upload.exists(), timeout=10, what="the failed job's upload to be removed")
    job.refresh()
    assert job.retries_left == 0  # a broken file is not retried

    ok = finished(client, submit(client, make_image(), []).get_json()["id"])
    assert ok["status"] == "finished"


def test_job_json_is_json(client):
    job_id = submit(client, make_image(), []).get_json()["id"]
    raw = client.get(f"/api/v1/jobs/{job_id}?wait=10").data
    assert json.loads(raw)["id"] == job_id


def test_hostile_filename_is_only_metadata(client, data_dir):
    name = "../../etc/passwd <script>.png"
    job = finished(client, submit(client, make_image(), [], filename=name).get_json()["id"])
    assert job["input"]["filename"] == name  # reported back as data (JSON-escaped), never used as a path
    stored = {p.name for p in data_dir.rglob("*") if p.is_file()}
    assert f"{job['id']}.png" in stored and not any("passwd" in s or "script" in s for s in stored)
    disposition = download(client, job["links"]["result"]).headers["Content-Disposition"]
    assert disposition == "inline; filename=etc_passwd_script.png"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_one_pixel_images_of_every_accepted_type_work(client, fmt):
    response = submit(client, make_image(size=(1, 1), fmt=fmt), [], filename=f"dot.{fmt.lower()}")
    job = finished(client, response.get_json()["id"])
    assert job["status"] == "finished", job
    assert (job["result"]["width"], job["result"]["height"]) == (1, 1)


def test_ops_sent_as_a_file_part_are_read_too(client):
    """curl -F ops=@steps.json sends the steps as a file; they must not be silently ignored."""
    steps = io.BytesIO(b'[{"op": "resize", "width": 16}]')
    fields = {"file": (io.BytesIO(make_image()), "photo.png"), "ops": (steps, "steps.json")}
    response = client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data")
    assert response.status_code == 202
    assert finished(client, response.get_json()["id"])["result"]["width"] == 16


def test_submit_with_wait_answers_the_ended_job_in_one_request(client):
    response = client.post("/api/v1/jobs?wait=30", data={"file": (io.BytesIO(make_image(size=(400, 300))), "a.png"),
                           "ops": json.dumps([{"op": "resize", "width": 100}])}, content_type="multipart/form-data")
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["status"] == "finished" and body["progress"] == 1.0
    assert body["result"]["width"] == 100
    result = download(client, body["links"]["result"])
    assert result.status_code == 200 and len(result.data) == body["result"]["bytes"]


def test_submit_with_wait_answers_a_failed_job_too(client):
    whole = make_image(size=(300, 200), fmt="JPEG")
    truncated = whole[: len(whole) // 2]  # its header passes the upload check; decoding fails in the worker
    response = client.post("/api/v1/jobs?wait=30", data={"file": (io.BytesIO(truncated), "cut.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "undecodable_image"


def test_submit_with_wait_on_a_job_that_does_not_end_answers_queued(client, redis_client):
    from rq import Queue

    client.application.config["QUEUE_NAME"] = "nobody-listens"
    response = client.post("/api/v1/jobs?wait=0.2", data={"file": (io.BytesIO(make_image()), "a.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"
    Queue("nobody-listens", connection=redis_client).empty()


@pytest.mark.parametrize("wait", ["abc", "-1", "31", "nan"])
def test_submit_with_a_bad_wait_is_refused_before_any_job_exists(client, wait):
    before = client.get("/api/v1/jobs").get_json()["total"]
    response = client.post(f"/api/v1/jobs?wait={wait}", data={"file": (io.BytesIO(make_image()), "a.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_argument"
    assert client.get("/api/v1/jobs").get_json()["total"] == before


def test_a_fetched_job_carries_its_result_without_another_read(client, monkeypatch):
    from rq.results import Result

    from web import api, store

    job_id = finished(client, submit(client, make_image(), [{"op": "grayscale"}]).get_json()["id"])["id"]
    with client.application.test_request_context():
        job = store.fetch(job_id)

        def refuse(*args, **kwargs):
            raise AssertionError("the result was read again")

        monkeypatch.setattr(Result, "fetch_latest", refuse)
        body = api.view(job)
    assert body["status"] == "finished" and body["result"]["format"] == "png"


def test_submit_with_wait_answers_the_queued_job_when_redis_fails_during_the_wait(client, monkeypatch):
    import redis

    from web import store

    def broken(job, seconds):
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(store, "wait", broken)
    response = client.post("/api/v1/jobs?wait=30", data={"file": (io.BytesIO(make_image()), "a.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 202  # the job exists: not a 503 that would make the client send it again
    monkeypatch.undo()
    assert finished(client, response.get_json()["id"])["status"] == "finished"


class ReadRecorder:
    """A request body that records the size of every read; like gunicorn's it has no readinto.

    (It can tell and seek only for Werkzeug's test client, which measures the body with them.)
    """

    def __init__(self, stream: io.BytesIO, reads: list[int]) -> None:
        self.stream, self.reads = stream, reads
        self.tell, self.seek = stream.tell, stream.seek

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return self.stream.read(size)


def test_an_upload_is_read_from_the_server_a_megabyte_at_a_time_and_arrives_whole(client):
    pixels = np.random.default_rng(7).integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)  # noise: 3 MB as PNG
    data = encode(Image.fromarray(pixels, "RGB"), "PNG", compress_level=0)
    environ = EnvironBuilder(path="/api/v1/jobs", method="POST", data={"file": (io.BytesIO(data), "noise.png")},
                             content_type="multipart/form-data").get_environ()
    with environ["wsgi.input"] as encoded:  # Werkzeug's encoder spools a body this big to a temp file
        body = io.BytesIO(encoded.read())
    reads: list[int] = []
    environ["wsgi.input"] = ReadRecorder(body, reads)
    response = client.open(environ)
    assert response.status_code == 202, response.data
    # Werkzeug alone reads 64 KB at a time: 46 reads of this body, each copying what gunicorn read ahead
    assert len(reads) <= -(-len(data) // uploads.BODY_READ_BYTES) + 2, reads
    job = finished(client, response.get_json()["id"])
    assert job["status"] == "finished" and job["input"]["bytes"] == len(data)
    result = Image.open(io.BytesIO(download(client, job["links"]["result"]).data))
    assert np.array_equal(np.asarray(result), pixels)
