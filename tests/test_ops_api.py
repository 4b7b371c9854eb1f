"""Every op through the API, on a photo-like JPEG, with a real Redis and a real worker."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bench.images import jpeg
from imgjobs.catalog import CATALOG
from tests.conftest import download, finished, submit
from tests.images import SAMPLES
from tests.test_ops_sanity import REQUIRED

pytestmark = pytest.mark.usefixtures("worker")

PHOTO = jpeg((640, 480), seed=11, quality=90)


@pytest.mark.parametrize("name", CATALOG)
def test_every_op_runs_through_the_api(client, name):
    response = submit(client, PHOTO, [{"op": name, **REQUIRED.get(name, {})}], filename="photo.jpg")
    assert response.status_code == 202, response.get_json()
    job = finished(client, response.get_json()["id"])
    assert job["status"] == "finished", job
    result = download(client, job["links"]["result"])
    image = Image.open(io.BytesIO(result.data))
    assert image.format == "JPEG" and image.size == (job["result"]["width"], job["result"]["height"])
    if CATALOG[name].analysis:
        [entry] = job["result"]["analysis"]
        assert entry["op"] == name and entry["output"]
        assert image.size == (640, 480)


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_kind_of_input_runs_through_the_api(client, sample):
    build, mode = SAMPLES[sample]
    ops = [{"op": "rotate", "angle": 10, "fill": "#00000000"}, {"op": "sharpen"}, {"op": "stats"}]
    job = finished(client, submit(client, build(), ops, filename=sample, format="png").get_json()["id"])
    assert job["status"] == "finished", job
    [stats] = job["result"]["analysis"]
    assert "A" in stats["output"]["channels"]  # rotate's transparent corners
    assert list(stats["output"]["channels"])[0] == ("L" if mode.startswith("L") else "R")


def test_the_catalogue_lists_every_op_with_its_schema(client):
    body = client.get("/api/v1/ops").get_json()
    assert [op["name"] for op in body["ops"]] == list(CATALOG)
    rotate = next(op for op in body["ops"] if op["name"] == "rotate")
    assert rotate["family"] == "geometry"
    assert [p["name"] for p in rotate["params"]] == ["angle", "expand", "fill", "filter"]
    assert rotate["params"][0]["required"] is True and "default" not in rotate["params"][2]  # follows the image


def test_analysis_json_in_the_job_result(client):
    ops = [{"op": "resize", "width": 320}, {"op": "palette", "colors": 3}, {"op": "hash"}, {"op": "stats"}]
    job = finished(client, submit(client, PHOTO, ops, filename="photo.jpg").get_json()["id"])
    assert job["status"] == "finished", job
    palette, hashes, stats = (entry["output"] for entry in job["result"]["analysis"])
    assert len(palette["colors"]) == 3 and palette["pixels"] == 320 * 240
    assert set(hashes) == {"hash_size", "ahash", "dhash", "phash"}
    assert stats["width"] == 320 and set(stats["channels"]) == {"R", "G", "B"}


def test_a_bad_step_for_this_image_is_refused_before_it_is_queued(client):
    # the web sizes every step from the header (the pixel budget), so a crop outside the image never reaches a worker
    response = submit(client, PHOTO, [{"op": "crop", "x": 5000}], filename="photo.jpg")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_ops" and error["step"] == 1 and "outside the 640x480 image" in error["message"]


def test_transparent_png_stays_transparent_through_rotate(client):
    buffer = io.BytesIO()
    Image.open(io.BytesIO(PHOTO)).convert("RGBA").save(buffer, "PNG")
    job = finished(client, submit(client, buffer.getvalue(), [{"op": "rotate", "angle": 45}]).get_json()["id"])
    image = Image.open(io.BytesIO(download(client, job["links"]["result"]).data))
    assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0
