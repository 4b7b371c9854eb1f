"""Every bad upload gets a clear 4xx JSON error and leaves no file behind."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from tests.conftest import make_image, submit


def error_of(response, status: int) -> dict:
    """Assert the response is the API's JSON error with `status`; return its error object."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["status"] == status and error["code"] and error["message"]
    return error


def files_under(data_dir) -> set[str]:
    """Return the uploads, results and temp files present now."""
    return {str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file()}


@pytest.fixture
def no_new_files(data_dir):
    before = files_under(data_dir)
    yield
    assert files_under(data_dir) == before


pytestmark = pytest.mark.usefixtures("no_new_files")


def test_oversized_upload_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    response = submit(client, os.urandom(20_000))
    assert error_of(response, 413)["code"] == "upload_too_large"


def test_text_file_named_png_is_415(client):
    error = error_of(submit(client, b"#!/bin/sh\necho hello\n" * 10, filename="evil.png"), 415)
    assert error["code"] == "unsupported_type" and "JPEG" in error["message"]


def test_svg_is_415(client):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert error_of(submit(client, svg, filename="x.svg"), 415)["code"] == "unsupported_type"


def test_pdf_with_image_content_type_is_415(client):
    response = client.post(
        "/api/v1/jobs",
        data={"file": (io.BytesIO(b"%PDF-1.7\n" + b"0" * 100), "doc.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )
    assert error_of(response, 415)["code"] == "unsupported_type"


def test_damaged_header_of_a_png_is_422(client):
    data = bytearray(make_image())
    data[16:24] = b"\xff" * 8  # width and height in IHDR
    assert error_of(submit(client, bytes(data)), 422)["code"] == "undecodable_image"


def test_too_many_pixels_is_422_before_decoding(app, client):
    app.config["MAX_PIXELS"] = 100 * 100
    error = error_of(submit(client, make_image(size=(200, 101))), 422)
    assert error["code"] == "too_many_pixels" and "200x101" in error["message"]


def test_decompression_bomb_is_422(client):
    # 8000x8000 of one colour compresses to about 60 KB but is 64 megapixels (the cap is 50)
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, "PNG")
    assert error_of(submit(client, buffer.getvalue()), 422)["code"] == "too_many_pixels"


def test_empty_file_is_400(client):
    assert error_of(submit(client, b""), 400)["code"] == "empty_file"


def test_missing_file_is_400(client):
    response = client.post("/api/v1/jobs", data={"ops": "[]"}, content_type="multipart/form-data")
    assert error_of(response, 400)["code"] == "missing_file"


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ("not json", "not valid JSON"),
        ('{"op": "resize"}', "JSON list"),
        ('[{"op": "explode"}]', "step 1: unknown op 'explode'"),
        ('[{"op": "grayscale"}, {"op": "resize"}]', "step 2 (resize): give width, height or both"),
        ('[{"op": "resize", "width": 0}]', "step 1 (resize): width must be an integer from 1 to 16384, got 0"),
        ('[{"op": "resize", "width": "big"}]', "width must be an integer"),
        ('[{"op": "resize", "width": 10, "fit": "squash"}]', "fit must be one of inside, contain, cover, fill"),
        ('[{"op": "resize", "widht": 10}]', "widht is not a parameter of resize"),
        ('[{"op": "grayscale"}]' .replace("]", ', {"op": "grayscale"}' * 20 + "]"), "at most 20"),
        ("[42]", 'step 1 must be an object with an "op" name'),
    ],
)
def test_bad_ops_are_400_naming_step_and_parameter(client, ops, words):
    error = error_of(submit(client, make_image(), ops), 400)
    assert error["code"] == "invalid_ops"
    assert words in error["message"]


def test_invalid_ops_error_names_step_and_parameter_as_fields(client):
    error = error_of(submit(client, make_image(), '[{"op": "grayscale"}, {"op": "resize", "width": -1}]'), 400)
    assert (error["step"], error["param"]) == (2, "width")


@pytest.mark.parametrize(("field", "value"), [("format", "gif"), ("quality", "0"), ("quality", "high")])
def test_bad_output_options_are_400(client, field, value):
    response = submit(client, make_image(), [], **{"format": "jpeg", field: value})
    assert error_of(response, 400)["code"] == "invalid_output"


def test_redis_down_is_503_and_keeps_no_file(data_dir):
    from tests.conftest import free_port
    from web import create_app

    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "DATA_DIR": str(data_dir)})
    client = app.test_client()
    error = error_of(submit(client, make_image(), []), 503)
    assert error["code"] == "queue_unavailable"
    assert error_of(client.get("/readyz"), 503)["code"] == "queue_unavailable"


def test_unknown_and_malformed_job_ids_are_404(client):
    assert error_of(client.get("/api/v1/jobs/" + "0" * 32), 404)["code"] == "job_not_found"
    assert error_of(client.get("/api/v1/jobs/..%2F..%2Fetc%2Fpasswd"), 404)["code"] in ("job_not_found", "not_found")
    assert error_of(client.get("/api/v1/jobs/nope/result"), 404)["code"] == "job_not_found"
    assert error_of(client.delete("/api/v1/jobs/nope"), 404)["code"] == "job_not_found"


def test_werkzeug_errors_are_json(client):
    assert error_of(client.get("/no/such/page"), 404)["code"] == "not_found"
    assert error_of(client.put("/api/v1/jobs"), 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize("query", ["wait=abc", "wait=31", "wait=-1"])
def test_bad_wait_is_400(client, query):
    assert error_of(client.get(f"/api/v1/jobs/{'0' * 32}?{query}"), 400)["code"] == "invalid_argument"


@pytest.mark.parametrize("query", ["page=0", "per_page=1000", "page=x"])
def test_bad_page_is_400(client, query):
    assert error_of(client.get(f"/api/v1/jobs?{query}"), 400)["code"] == "invalid_argument"


def test_job_lookup_with_redis_down_is_503(data_dir):
    from tests.conftest import free_port
    from web import create_app

    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "DATA_DIR": str(data_dir)})
    assert error_of(app.test_client().get("/api/v1/jobs/" + "a" * 32), 503)["code"] == "queue_unavailable"
    assert error_of(app.test_client().get("/api/v1/jobs"), 503)["code"] == "queue_unavailable"


@pytest.mark.parametrize(("content", "words"), [(b"\xff\xfe[", "not UTF-8"), (b" " * 70_000, "over 64 KB")])
def test_bad_ops_file_part_is_400(client, content, words):
    fields = {"file": (io.BytesIO(make_image()), "photo.png"), "ops": (io.BytesIO(content), "steps.json")}
    response = client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data")
    error = error_of(response, 400)
    assert error["code"] == "invalid_ops" and words in error["message"]
