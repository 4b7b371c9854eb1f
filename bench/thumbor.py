"""This service against thumbor on thumbor's own work, as ratios measured side by side in one run.

    python -m bench.thumbor PATH/TO/thumbor     (`make bench` installs thumbor in its own venv)

Both serve the same generated JPEG files: thumbor 7 (two processes, the file loader, no
storage, no result storage, JPEG quality 85, baseline like ours) over `GET
/unsafe/<width>x0/<file>`, and this service (gunicorn, two workers, Redis) over upload,
`?wait=` and download. The same client, two threads with a keep-alive session each, sends
a batch of images to one system and then to the next, in a shuffled order every round;
throughput is images a second over a batch, and medians are compared. Printed:
- large: 12 MP photo-like JPEG -> 1024 px wide JPEG q85 (target >= 1.0x thumbor, stretch 1.2x);
- small: 640x480 JPEG -> 128 px wide thumbnail (target >= 1.0x thumbor); also, for
  information, the v1 flow of three requests (upload, GET ?wait=, download);
- both, for information, through the nginx front that compose and `make dev` put before
  gunicorn (the main rows are gunicorn direct, as in earlier rounds);
- scaling: this service with 2 workers against 1 on the large work (target >= 1.8x);
- Redis round trips a job: requests Redis served, over small jobs one after another;
- web memory: the growth of the gunicorn worker's peak RSS (VmHWM) across one upload of
  nearly MAX_UPLOAD_MB (target within 10 MB).
"""

from __future__ import annotations

import io
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis
import requests
from PIL import Image

from bench import images
from tests.services import Front, RedisServer, WebServer, WorkerProcess, free_port, service_env, wait_until

ROUNDS = 5
CLIENTS = 2
#: name -> (file, size, output width, images a batch)
WORKLOADS = {
    "large": ("large.jpg", (4000, 3000), 1024, 10),
    "small": ("small.jpg", (640, 480), 128, 40),
}
QUALITY = 85
MEGABYTE = 1024 * 1024
THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = {quality}
PROGRESSIVE_JPEG = False
AUTO_WEBP = False
"""

Fetch = Callable[[requests.Session, str, int], None]


class Service:
    """This service as `make dev` runs it: a private Redis, gunicorn and `workers` workers."""

    def __init__(self, root: Path, images: Path, workers: int, **settings: object) -> None:
        root.mkdir()
        self.images = images
        self.redis = RedisServer(root)
        self.connection = redis.Redis.from_url(self.redis.url)
        # the benchmark is one client sending far more than the default 60 jobs a minute; the limiter still runs
        env = service_env(self.redis.url, root / "data", **{"RATE_LIMIT": "100000/second", **settings})
        self.workers = [WorkerProcess(env, self.connection, quiet=True) for _ in range(workers)]
        self.web = WebServer(env, quiet=True)
        self.url = self.web.url
        # the nginx front compose and `make dev` put before gunicorn, measured beside it
        self.front = Front(f"127.0.0.1:{self.web.port}", root / "spool")

    def fetch(self, session: requests.Session, name: str, width: int) -> None:
        """Upload one image with ?wait= (the job comes back once it ended) and download the result."""
        job = self._submit(session, name, width, "?wait=30")
        check(session.get(f"{self.url}{job['links']['result']}"), width)

    def fetch_front(self, session: requests.Session, name: str, width: int) -> None:
        """The same two requests through the nginx front."""
        job = self._submit(session, name, width, "?wait=30", self.front.url)
        check(session.get(f"{self.front.url}{job['links']['result']}"), width)

    def fetch_v1(self, session: requests.Session, name: str, width: int) -> None:
        """Upload one image, long-poll its job with GET ?wait= and download the result: three requests."""
        job = self._submit(session, name, width, "")
        job = session.get(f"{self.url}{job['links']['self']}?wait=30").json()
        if job["status"] != "finished":
            raise RuntimeError(f"the job did not finish: {job}")
        check(session.get(f"{self.url}{job['links']['result']}"), width)

    def _submit(self, session: requests.Session, name: str, width: int, query: str, url: str = "") -> dict:
        """POST one image with a resize to `width`; return the job, which must have finished if `query` waits."""
        source = self.images / name
        with source.open("rb") as handle:
            files = {"file": (name, handle, "image/jpeg")}
            ops = f'[{{"op":"resize","width":{width}}}]'
            created = session.post(f"{url or self.url}/api/v1/jobs{query}", files=files,
                                   data={"ops": ops, "quality": QUALITY})
        created.raise_for_status()
        job = created.json()
        if query and job["status"] != "finished":
            raise RuntimeError(f"the job did not finish: {job}")
        return job

    def round_trips(self, name: str, width: int, count: int = 20) -> float:
        """Return the requests Redis served a job (its total_reads_processed), over `count` jobs in a row."""
        def reads() -> int:
            return int(self.connection.info("stats")["total_reads_processed"])

        with requests.Session() as session:
            before = reads()
            for _ in range(count):
                self.fetch(session, name, width)
            return (reads() - before - 1) / count  # less the INFO that read `before`

    def stop(self) -> None:
        """Stop the front, the web, the workers and Redis."""
        self.front.stop()
        self.web.stop()
        for worker in self.workers:
            worker.stop()
        self.connection.close()
        self.redis.stop()


class Thumbor:
    """thumbor from its own venv on a free port, with the file loader over `images`."""

    def __init__(self, binary: str, images: Path, root: Path, processes: int = 2) -> None:
        conf = root / "thumbor.conf"
        conf.write_text(THUMBOR_CONF.format(root=str(images), quality=QUALITY))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [binary, "-p", str(self.port), "-i", "127.0.0.1", "-c", str(conf), "--processes", str(processes),
                   "-l", "error"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)  # its own group, so its forks stop with it
        wait_until(self._up, timeout=60, what=f"thumbor on {self.url}")

    def _up(self) -> bool:
        """Tell whether thumbor answers its health check; fail at once if it exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"thumbor exited with {self.process.returncode}")
        try:
            return requests.get(f"{self.url}/healthcheck", timeout=1).ok
        except requests.ConnectionError:
            return False

    def fetch(self, session: requests.Session, name: str, width: int) -> None:
        """Ask thumbor for one resized image."""
        check(session.get(f"{self.url}/unsafe/{width}x0/{name}"), width)

    def stop(self) -> None:
        """Stop thumbor and the processes it forked."""
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def check(response: requests.Response, width: int) -> None:
    """Raise unless the response is a JPEG `width` pixels wide."""
    response.raise_for_status()
    with Image.open(io.BytesIO(response.content)) as image:
        if image.format != "JPEG" or image.width != width:
            raise RuntimeError(f"expected a {width} px JPEG, got {image.format} {image.size}")


def batch(fetch: Fetch, name: str, width: int, count: int) -> float:
    """Fetch `count` images on CLIENTS threads, each with its own session; return images a second."""
    left = iter(range(count))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                try:
                    fetch(session, name, width)
                except BaseException as exc:  # re-raised in the main thread
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return count / elapsed


def throughput(systems: dict[str, Fetch], workload: str) -> dict[str, float]:
    """Return each system's median images a second on `workload`, batches interleaved in shuffled rounds."""
    name, _, width, count = WORKLOADS[workload]
    for fetch in systems.values():
        batch(fetch, name, width, CLIENTS * 2)  # warm-up: imports, connections, first-job costs
    samples: dict[str, list[float]] = {system: [] for system in systems}
    order = list(systems)
    for number in range(ROUNDS):
        random.shuffle(order)
        for system in order:
            samples[system].append(batch(systems[system], name, width, count))
        last = ", ".join(f"{system} {values[-1]:.1f}/s" for system, values in samples.items())
        progress(f"{workload} round {number + 1}/{ROUNDS}: {last}")
    return {system: statistics.median(values) for system, values in samples.items()}


def progress(message: str) -> None:
    """Say how far the benchmark is, on stderr."""
    print(message, file=sys.stderr, flush=True)


def big_upload(path: Path, megabytes: float) -> None:
    """Write a PNG of noise just under `megabytes` (noise does not compress)."""
    side = int((megabytes * MEGABYTE * 0.95 / 3) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, "PNG", compress_level=1)


def peak_rss_mb(pid: int) -> float:
    """Return the peak resident memory of process `pid` so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def web_memory(root: Path, source: Path, small: Path, max_upload_mb: float) -> tuple[float, float]:
    """Return the web worker's peak RSS before and after one upload of `source` (after a warm-up of `small`)."""
    service = Service(root, small.parent, 1, WEB_CONCURRENCY=1, MAX_UPLOAD_MB=max_upload_mb)
    try:
        def gunicorn_worker() -> str | None:
            out = subprocess.run(["pgrep", "-P", str(service.web.process.pid)], capture_output=True, text=True).stdout
            return next(iter(out.split()), None)

        worker_pid = int(wait_until(gunicorn_worker, what="the gunicorn worker"))
        with requests.Session() as session:
            for path in (small, small):
                with path.open("rb") as handle:
                    session.post(f"{service.url}/api/v1/jobs", files={"file": handle}).raise_for_status()
            before = peak_rss_mb(worker_pid)
            with source.open("rb") as handle:
                created = session.post(f"{service.url}/api/v1/jobs", files={"file": (source.name, handle)})
            created.raise_for_status()
            after = peak_rss_mb(worker_pid)
    finally:
        service.stop()
    return before, after


def verdict(ratio: float, target: float, above: bool = True) -> str:
    """Say whether `ratio` meets `target` (at least it when `above`, else at most it)."""
    return "OK" if (ratio >= target if above else ratio <= target) else "MISSED"


def main(binary: str) -> None:
    """Start thumbor and this service with one and two workers, measure, print the table."""
    with tempfile.TemporaryDirectory(prefix="bench-thumbor-") as tmp:
        root = Path(tmp)
        files = root / "images"
        files.mkdir()
        for name, size, _, _ in WORKLOADS.values():
            (files / name).write_bytes(images.jpeg(size))
        max_upload_mb = 25.0
        big_upload(root / "big.png", max_upload_mb)
        before, after = web_memory(root / "memory", root / "big.png", files / "small.jpg", max_upload_mb)
        progress(f"web peak RSS {before:.1f} -> {after:.1f} MB; starting thumbor and this service")
        thumbor = Thumbor(binary, files, root)
        two = Service(root / "two", files, 2)
        one = Service(root / "one", files, 1)
        try:
            large = throughput({"thumbor": thumbor.fetch, "imgjobs": two.fetch, "imgjobs-1": one.fetch,
                                "imgjobs-front": two.fetch_front}, "large")
            small = throughput({"thumbor": thumbor.fetch, "imgjobs": two.fetch, "imgjobs-v1": two.fetch_v1,
                                "imgjobs-front": two.fetch_front}, "small")
            trips = one.round_trips("small.jpg", 128)
        finally:
            for system in (one, two, thumbor):
                system.stop()
    report(large, small, before, after, trips)


def report(large: dict[str, float], small: dict[str, float], before: float, after: float, trips: float) -> None:
    """Print images a second and every ratio with its target and verdict."""
    print(f"\nThis service against thumbor: {CLIENTS} clients, {ROUNDS} interleaved rounds, medians of images/s")
    print("(this service: upload with ?wait=, then download; thumbor: one GET; both 2 processes on this machine)\n")
    print(f"{'measure':<44} {'value':>8} {'target':>8}  verdict")
    rows = [
        ("large: imgjobs / thumbor (12 MP -> 1024 px)", large["imgjobs"] / large["thumbor"], ">= 1.0", 1.0, True),
        ("small: imgjobs / thumbor (640x480 -> 128 px)", small["imgjobs"] / small["thumbor"], ">= 1.0", 1.0, True),
        ("small, v1 flow: upload, GET ?wait=, download", small["imgjobs-v1"] / small["thumbor"], "info", 0.0, True),
        ("large, through the nginx front", large["imgjobs-front"] / large["thumbor"], "info", 0.0, True),
        ("small, through the nginx front", small["imgjobs-front"] / small["thumbor"], "info", 0.0, True),
        ("scaling: 2 workers / 1 worker (large)", large["imgjobs"] / large["imgjobs-1"], ">= 1.8", 1.8, True),
        ("web peak RSS growth over a 25 MB upload, MB", after - before, "<= 10", 10.0, False),
    ]
    for label, value, target, bound, above in rows:
        judged = "-" if target == "info" else verdict(value, bound, above)
        print(f"{label:<44} {value:>8.2f} {target:>8}  {judged}")
    print("\nimages/s: " + ", ".join(f"large {k} {v:.1f}" for k, v in large.items())
          + ", " + ", ".join(f"small {k} {v:.1f}" for k, v in small.items()))
    print(f"stretch (large >= 1.2x thumbor): {verdict(large['imgjobs'] / large['thumbor'], 1.2)}")
    print(f"web worker peak RSS: {before:.1f} MB before the upload, {after:.1f} MB after")
    print(f"Redis round trips a job (upload with ?wait=, download; web and worker): {trips:.1f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.thumbor PATH/TO/thumbor")
    main(sys.argv[1])
