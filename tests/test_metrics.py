"""/metrics reads the queue's state from Redis in Prometheus' text format."""

from __future__ import annotations

import re
from datetime import timedelta

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


def queue_sample(text: str, name: str, queue: str) -> float:
    """Return one queue's sample from the exposition text."""
    match = re.search(rf'^{name}{{queue="{re.escape(queue)}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {queue} missing from:\n{text}"
    return float(match.group(1))


def test_metrics_give_each_queue_its_depth_and_oldest_wait(app, client, redis_client):
    from rq.job import Job
    from rq.serializers import JSONSerializer
    from rq.utils import utcformat

    app.config["QUEUE_NAME"] = "nobody-serves-depth"
    text = client.get("/metrics").text
    assert queue_sample(text, "imgjobs_queue_depth", "nobody-serves-depth") == 0
    assert queue_sample(text, "imgjobs_queue_oldest_age_seconds", "nobody-serves-depth") == 0
    first, second = (submit(client, make_image(), []).get_json()["id"] for _ in range(2))
    for job_id, waited in ((first, 120), (second, 30)):  # as if they had been queued that long ago
        job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        redis_client.hset(job.key, "enqueued_at", utcformat(job.enqueued_at - timedelta(seconds=waited)))
    text = client.get("/metrics").text
    assert queue_sample(text, "imgjobs_queue_depth", "nobody-serves-depth") == 2
    oldest = queue_sample(text, "imgjobs_queue_oldest_age_seconds", "nobody-serves-depth")
    assert 120 <= oldest < 30 + 120  # the backdated head of the queue, not how fast anything ran
    redis_client.delete(Job.key_for(first))  # the head's job expired: the next one is the oldest
    text = client.get("/metrics").text
    oldest = queue_sample(text, "imgjobs_queue_oldest_age_seconds", "nobody-serves-depth")
    assert 30 <= oldest < 120
