"""What the cost bounds hold under attack, each figure beside the unattacked one.

    python -m bench.abuse        (or `make bench`)

- web: the peak RSS of gunicorn (all its processes, VmHWM) while four clients post a
  few KB of lossless 50 MP WebP, against four clients posting a normal 1 MP PNG;
- worker: the peak RSS of the worker child after the pad and resize bombs are enqueued
  straight into Redis (bypassing the web's budget), against a normal 1 MP job;
- fairness: a normal 1 MP job's latency over HTTP while 50 heavy jobs wait, against an
  idle service; the target is 2 s plus one heavy job's run time;
- slow clients: a normal job's latency through the nginx front while 64 clients upload at
  1 KB/s, against no slow clients; the target is at most 1 s more. Beside it, the same
  slow clients straight at gunicorn, which they stall.
Every figure comes from fresh processes started here (real Redis, gunicorn, worker).
"""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import redis
import requests
from PIL import Image
from rq import Queue
from rq.serializers import JSONSerializer

from imgjobs.catalog import validate_steps
from imgjobs.jobs import TASK
from imgjobs.storage import new_job_id
from imgjobs.storage.local import LocalStorage
from tests.services import Front, RedisServer, SlowUploads, WebServer, WorkerProcess, service_env, wait_until

CLIENTS = 4
POSTS = 8  # per client
HEAVY_JOBS = 50
SLOW_CLIENTS = 64
#: 16 MP and 13 full passes: over HEAVY_PIXELS (200 MP handled), about a second of work.
HEAVY = [{"op": "resize", "width": 4000, "height": 4000, "fit": "fill"}] + [{"op": "invert"}] * 12
NORMAL = [{"op": "resize", "width": 512}]
BOMBS = {
    "pad border=16384 on 1 px": [{"op": "pad", "border": 16384}],
    "resize 16384x16384 fill on 1 px": [{"op": "resize", "width": 16384, "height": 16384, "fit": "fill"}],
}


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Return `image` encoded as `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def peak_mb(pids: list[int]) -> float:
    """Return the sum of the processes' peak resident memory, in MB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def gunicorn_pids(web: WebServer) -> list[int]:
    """Return gunicorn's master and worker pids."""
    children = Path(f"/proc/{web.process.pid}/task/{web.process.pid}/children").read_text().split()
    return [web.process.pid, *map(int, children)]


def flood_web(env: dict[str, str], data: bytes, name: str) -> float:
    """Start gunicorn, let four clients post `data` (to a queue nobody serves), return its peak MB."""
    web = WebServer({**env, "QUEUE_NAME": "abuse-unserved"}, quiet=True)
    try:
        def client(_: int) -> None:
            for _ in range(POSTS):
                response = requests.post(f"{web.url}/api/v1/jobs", files={"file": (name, data)}, data={"ops": "[]"})
                assert response.status_code in (202, 422), response.text
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))
        return peak_mb(gunicorn_pids(web))
    finally:
        web.stop()


def worker_peak(env: dict[str, str], connection: redis.Redis, storage: LocalStorage, upload: bytes,
                steps: list[dict]) -> tuple[float, str]:
    """Start a worker, run one job straight from Redis, return the child's peak MB and how the job ended."""
    worker = WorkerProcess({**env, "QUEUE_NAME": "abuse-direct"}, connection, quiet=True)
    try:
        job_id = new_job_id()
        storage.upload(job_id).write_bytes(upload)
        spec = {"ops": validate_steps(steps, 20), "format": "png", "quality": None}
        job = Queue("abuse-direct", connection=connection, serializer=JSONSerializer).enqueue(TASK, spec, job_id=job_id)
        wait_until(lambda: job.get_status(refresh=True) in ("finished", "failed"), timeout=120, what="the job")
        peak = peak_mb([worker.job_process()])
        job.refresh()
        error = job.meta.get("error")
        return peak, str(job.get_status().value) + (f" ({error['code']})" if error else "")
    finally:
        worker.stop()


def latency(url: str, data: bytes, timeout: float | None = None) -> float:
    """Submit a normal job over HTTP and wait for it; return seconds from upload to its end."""
    start = time.perf_counter()
    created = requests.post(f"{url}/api/v1/jobs", files={"file": ("photo.png", data)},
                            data={"ops": json.dumps(NORMAL)}, timeout=timeout)
    created.raise_for_status()
    job = requests.get(f"{url}{created.json()['links']['self']}?wait=30").json()
    assert job["status"] == "finished", job
    return time.perf_counter() - start


def parse(moment: str) -> datetime:
    """Read the API's ISO 8601 time."""
    return datetime.strptime(moment, "%Y-%m-%dT%H:%M:%S.%fZ")


def fairness(env: dict[str, str], connection: redis.Redis, photo: bytes, dot: bytes) -> dict[str, float]:
    """Measure a normal job idle and behind 50 queued heavy jobs, and a heavy job's own run time."""
    web = WebServer(env, quiet=True)
    worker = WorkerProcess(env, connection, quiet=True)
    try:
        idle = statistics.median(latency(web.url, photo) for _ in range(5))
        heavy_ids = []
        for _ in range(HEAVY_JOBS):
            created = requests.post(f"{web.url}/api/v1/jobs", files={"file": ("dot.png", dot)},
                                    data={"ops": json.dumps(HEAVY)})
            created.raise_for_status()
            heavy_ids.append(created.json()["id"])
        first = requests.get(f"{web.url}/api/v1/jobs/{heavy_ids[0]}?wait=30").json()
        heavy_run = (parse(first["ended_at"]) - parse(first["started_at"])).total_seconds()
        flooded = statistics.median(latency(web.url, photo) for _ in range(3))
        for job_id in heavy_ids:
            requests.delete(f"{web.url}/api/v1/jobs/{job_id}")
        return {"idle": idle, "flooded": flooded, "heavy": heavy_run}
    finally:
        worker.stop()
        web.stop()


def slow_clients(env: dict[str, str], connection: redis.Redis, photo: bytes, spool: Path) -> dict[str, float]:
    """Measure a normal job through the front with and without 64 slow uploads, then straight at gunicorn."""
    web = WebServer(env, quiet=True)
    front = Front(f"127.0.0.1:{web.port}", spool)
    worker = WorkerProcess(env, connection, quiet=True)
    try:
        idle = statistics.median(latency(front.url, photo) for _ in range(5))
        slow = SlowUploads(front.port, SLOW_CLIENTS)
        try:
            time.sleep(2)
            loaded = statistics.median(latency(front.url, photo) for _ in range(5))
            cut = slow.answered()
        finally:
            slow.close()
        slow = SlowUploads(web.port, SLOW_CLIENTS)
        try:
            time.sleep(2)
            try:
                direct = latency(web.url, photo, timeout=10)
            except requests.Timeout:
                direct = float("inf")
        finally:
            slow.close()
        return {"idle": idle, "loaded": loaded, "cut": cut, "direct": direct}
    finally:
        worker.stop()
        front.stop()
        web.stop()


def main() -> None:
    """Run the three attacks on fresh processes and print each figure beside the unattacked one."""
    photo = encoded(Image.effect_mandelbrot((1200, 900), (-2, -1.2, 1, 1.2), 60).convert("RGB"), "PNG")
    dot = encoded(Image.new("RGB", (1, 1), "white"), "PNG")
    bomb = encoded(Image.new("RGB", (7000, 7000), "white"), "WEBP", lossless=True, method=0, quality=0)
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        root = Path(tmp)
        storage = LocalStorage(root / "data")
        storage.ensure()
        server = RedisServer(root)
        connection = redis.Redis.from_url(server.url)
        env = service_env(server.url, root / "data", WEB_CONCURRENCY=2, WORKERS=1,
                          RATE_LIMIT="10000/minute", JOBS_PER_CLIENT=1000)
        try:
            web_normal = flood_web(env, photo, "photo.png")
            web_bomb = flood_web(env, bomb, "bomb.webp")
            worker_normal = worker_peak(env, connection, storage, photo, NORMAL)
            worker_bombs = {name: worker_peak(env, connection, storage, dot, steps) for name, steps in BOMBS.items()}
            fair = fairness(env, connection, photo, dot)
            slow = slow_clients(env, connection, photo, root / "spool")
        finally:
            connection.close()
            server.stop()
    print("\nAbuse: figures under attack beside the unattacked ones (fresh processes each)\n")
    print(f"web peak RSS, {CLIENTS} clients x {POSTS} posts: 1 MP PNG {web_normal:.0f} MB; "
          f"{len(bomb):,}-byte 49 MP WebP bomb {web_bomb:.0f} MB ({web_bomb / web_normal:.2f}x)")
    print(f"worker child peak RSS: normal 1 MP job {worker_normal[0]:.0f} MB, {worker_normal[1]}")
    for name, (peak, how) in worker_bombs.items():
        print(f"  {name}, enqueued past the web: {peak:.0f} MB ({peak / worker_normal[0]:.2f}x), {how}")
    target = 2 + fair["heavy"]
    verdict = "met" if fair["flooded"] <= target else "OVER"
    print(f"normal job latency: idle {fair['idle'] * 1000:.0f} ms; behind {HEAVY_JOBS} heavy jobs "
          f"{fair['flooded'] * 1000:.0f} ms ({fair['flooded'] / fair['idle']:.1f}x); one heavy job "
          f"{fair['heavy'] * 1000:.0f} ms; target 2 s + one heavy job = {target * 1000:.0f} ms: {verdict}")
    delay = slow["loaded"] - slow["idle"]
    direct = "over 10 s (timed out)" if slow["direct"] == float("inf") else f"{slow['direct'] * 1000:.0f} ms"
    print(f"normal job through the front: idle {slow['idle'] * 1000:.0f} ms; with {SLOW_CLIENTS} uploads at "
          f"1 KB/s {slow['loaded'] * 1000:.0f} ms (delay {delay * 1000:+.0f} ms, target <= 1000 ms: "
          f"{'met' if delay <= 1 else 'OVER'}; slow uploads cut off: {slow['cut']}); "
          f"straight at gunicorn with them: {direct}")


if __name__ == "__main__":
    main()
