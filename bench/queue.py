"""What the queue and the HTTP layer add to a job, as ratios measured side by side in one run.

    python -m bench.queue        (or `make bench`)

Three ways to run the same job (a 12-megapixel JPEG resized to 1024 px, saved as JPEG):
- direct:  the worker's pipeline called in this process (decode, resize, encode, write);
- queued:  the same job enqueued with RQ to a real `python -m worker` and awaited;
- http:    uploaded to gunicorn with ?wait= (answered once the job ended), and the result downloaded;
and the web's upload check alone (it reads headers and structure only, no pixels):
- validate: web.uploads.inspect on the same file.
Rounds interleave them; medians are compared. Targets (issue #12): queued/direct <= 1.05, http/direct <= 1.30.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import requests
from PIL import Image
from redis.client import PubSub
from rq import Queue
from rq.serializers import JSONSerializer

from bench import images
from imgjobs.catalog import validate_steps
from imgjobs.jobs import TASK, event_channel
from imgjobs.storage import new_job_id
from imgjobs.storage.local import LocalStorage
from tests.services import RedisServer, WebServer, WorkerProcess, service_env
from web import uploads
from worker import pipeline

ROUNDS = 9
STEPS = [{"op": "resize", "width": 1024}]
TARGETS = {"queued": 1.05, "http": 1.30}


def median_ms(samples: list[float]) -> float:
    """Return the median of seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def main() -> None:
    """Measure the three ways, interleaved, and print the ratios."""
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        root = Path(tmp)
        source = root / "photo.jpg"
        source.write_bytes(images.jpeg())
        data = root / "data"
        storage = LocalStorage(data)
        storage.ensure()
        server = RedisServer(root)
        connection = redis.Redis.from_url(server.url)
        env = service_env(server.url, data, WEB_CONCURRENCY=1)
        worker = WorkerProcess(env, connection, quiet=True)
        web = WebServer(env, quiet=True)
        job_spec = {"ops": validate_steps(STEPS, 20), "format": "jpeg", "quality": 85}
        queue = Queue(connection=connection, name="images", serializer=JSONSerializer)
        ended = connection.pubsub(ignore_subscribe_messages=True)
        ended.psubscribe(event_channel("*"))
        try:
            runs: dict[str, Callable[[], None]] = {
                "direct": lambda: direct(source, storage, job_spec),
                "queued": lambda: queued(source, storage, job_spec, queue, ended),
                "http": lambda: over_http(source, web.url),
                "validate": lambda: uploads.inspect(source, 50_000_000),
            }
            samples = measure(runs)
            megabytes = source.stat().st_size / 1e6
        finally:
            ended.close()
            web.stop()
            worker.stop()
            connection.close()
            server.stop()
    report(samples, megabytes)


def measure(runs: dict[str, Callable[[], None]]) -> dict[str, list[float]]:
    """Run each way once per round in a shuffled order, after one warm-up each."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()
    order = list(runs)
    for _ in range(ROUNDS):
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def direct(source: Path, storage: LocalStorage, job_spec: dict) -> None:
    """Run the pipeline in this process."""
    job_id = new_job_id()
    pipeline.process(source, storage.result(job_id, "jpeg"), job_spec)
    storage.remove(job_id)


def queued(source: Path, storage: LocalStorage, job_spec: dict, queue: Queue, ended: PubSub) -> None:
    """Enqueue the job as the web does and wait for the worker's end-of-job message.

    `ended` is subscribed to every end-of-job channel once, as each web process is (web/events.py).
    """
    job_id = new_job_id()
    os.link(source, storage.upload(job_id))
    queue.enqueue(TASK, job_spec, job_id=job_id, meta={"progress": 0.0})
    while (message := ended.get_message(timeout=30)) is None or message["channel"] != event_channel(job_id).encode():
        pass
    assert queue.fetch_job(job_id).get_status() == "finished"
    storage.remove(job_id)


def over_http(source: Path, url: str) -> None:
    """Upload with ?wait= and download through gunicorn."""
    with source.open("rb") as handle:
        files = {"file": ("photo.jpg", handle, "image/jpeg")}
        created = requests.post(f"{url}/api/v1/jobs?wait=30", files=files,
                                data={"ops": '[{"op":"resize","width":1024}]'})
    created.raise_for_status()
    job = created.json()
    assert job["status"] == "finished", job
    result = requests.get(f"{url}{job['links']['result']}")
    result.raise_for_status()
    Image.open(io.BytesIO(result.content)).verify()


def report(samples: dict[str, list[float]], megabytes: float) -> None:
    """Print medians and ratios to the direct run."""
    base = median_ms(samples["direct"])
    print(f"\nQueue and HTTP overhead: 12 MP JPEG ({megabytes:.1f} MB) -> resize 1024 px")
    print(f"{ROUNDS} interleaved rounds, medians\n")
    print(f"{'way':<8} {'median ms':>10} {'x direct':>9} {'target':>7}  verdict")
    for name, values in samples.items():
        ms = median_ms(values)
        target = TARGETS.get(name)
        ratio = ms / base
        verdict = "" if target is None else ("OK" if ratio <= target else "OVER")
        print(f"{name:<8} {ms:>10.1f} {ratio:>9.2f} {target or '':>7}  {verdict}")


if __name__ == "__main__":
    main()
