"""Named presets: declared once beside the catalogue, listed by GET /api/v1/ops, accepted as a `preset` field."""

from __future__ import annotations

import io

import pytest

from imgjobs.catalog import validate_steps
from imgjobs.presets import PRESETS, describe, steps_for
from tests.conftest import finished, make_image, submit


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_job(name):
    steps = steps_for(name)
    assert validate_steps(steps, max_steps=20)
    assert name == name.lower() and " " not in name


def test_the_issue_presets_exist():
    assert {"thumbnail-512", "pencil-sketch", "poster-8", "analyse"} <= set(PRESETS)


def test_steps_for_returns_a_copy_and_names_the_known_ones():
    steps_for("poster-8")[0]["colors"] = 2
    assert steps_for("poster-8") == [{"op": "quantize", "colors": 8}]
    with pytest.raises(ValueError, match="unknown preset 'x' .presets: thumbnail-512, "):
        steps_for("x")


def test_ops_lists_the_presets(client):
    body = client.get("/api/v1/ops").get_json()
    assert body["presets"] == describe()
    assert {"name", "title", "description", "ops"} <= set(body["presets"][0])


@pytest.mark.usefixtures("worker")
def test_a_job_with_a_preset_runs_its_steps(client):
    response = submit(client, make_image("RGB", (1024, 768)), preset="thumbnail-512")
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["ops"] == validate_steps(steps_for("thumbnail-512"), 20)
    body = finished(client, job["id"])
    assert body["status"] == "finished" and (body["result"]["width"], body["result"]["height"]) == (512, 384)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"preset": "nope"}, "Unknown preset 'nope' (presets: thumbnail-512"),
        ({"preset": "analyse", "ops": '[{"op": "invert"}]'}, "either a preset or ops, not both"),
    ],
)
def test_bad_presets_are_400(client, form, message):
    response = submit(client, make_image(), **form)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_preset" and message in error["message"]


def test_preset_with_ops_as_a_file_part_is_refused_too(client):
    fields = {"file": (io.BytesIO(make_image()), "p.png"), "preset": "analyse",
              "ops": (io.BytesIO(b'[{"op": "invert"}]'), "steps.json")}
    response = client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_preset"
