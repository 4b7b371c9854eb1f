"""/metrics reads the queue's state from Redis in Prometheus' text format."""

from __future__ import annotations

import re

import pytest

from tests.conftest import finished, make_image, submit


def sample(text: str, name: str, state: str | None = None) -> float:
    """Return one sample's value from the exposition text."""
    label = f'{{state="{state}"}}' if state else ""
    match = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{label} missing from:\n{text}"
    return float(match.group(1))


@pytest.mark.usefixtures("worker")
def test_metrics_count_jobs_and_workers(client):
    before = sample(client.get("/metrics").text, "imgjobs_jobs", "finished")
    finished(client, submit(client, make_image(), []).get_json()["id"])
    response = client.get("/metrics")
    assert response.mimetype == "text/plain"
    text = response.text
    assert sample(text, "imgjobs_redis_up") == 1
    assert sample(text, "imgjobs_jobs", "finished") == before + 1
    assert sample(text, "imgjobs_workers", "idle") + sample(text, "imgjobs_workers", "busy") >= 1


def test_metrics_say_when_redis_is_down(data_dir):
    from tests.conftest import free_port
    from web import create_app

    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "DATA_DIR": str(data_dir)})
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert sample(response.text, "imgjobs_redis_up") == 0
