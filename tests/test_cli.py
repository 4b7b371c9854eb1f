"""The `imgjobs` client against a live service (gunicorn, Redis, a worker), and against a server answering 429."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from client.api import MAX_PAUSE, RETRIES, Api, ApiProblem
from tests.conftest import ROOT, make_image
from tests.services import RedisServer, WebServer, WorkerProcess, free_port, service_env
from tests.test_batch import read_terminal


def imgjobs(url: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the `imgjobs` command against `url`; return its outcome."""
    command = [sys.executable, "-m", "client", "--url", url, *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def service(redis_server: RedisServer, data_dir: Path, worker: WorkerProcess) -> Iterator[str]:
    """The real service under gunicorn with the session's worker; yields its URL."""
    server = WebServer(service_env(redis_server.url, data_dir), quiet=True)
    yield server.url
    server.stop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two good images (one in a sub-folder), a broken one and a text file."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(make_image("RGB", (64, 48)))
    (root / "sub" / "b.jpg").write_bytes(make_image("RGB", (80, 60), "JPEG"))
    (root / "broken.jpg").write_bytes(make_image("RGB", (64, 48), "JPEG")[:300])
    (root / "notes.txt").write_text("not an image")
    return root


def test_submit_a_folder_saves_results_and_reports_failures(service: str, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = imgjobs(service, "submit", folder, "--ops", '[{"op": "resize", "width": 32}]', "--out", out)
    assert done.returncode == 1, done.stdout + done.stderr  # one file failed
    assert "failed    broken.jpg: The image could not be decoded" in done.stdout, done.stdout
    assert "2 finished" in done.stdout and "1 failed" in done.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.jpg"]
    with Image.open(out / "sub" / "b.jpg") as image:
        assert image.format == "JPEG" and image.width == 32
    # Not a terminal: a plain line per file, no bars.
    assert f"finished  sub/b.jpg -> {out / 'sub' / 'b.jpg'}" in done.stderr.splitlines()
    assert "Traceback" not in done.stderr and "\x1b[" not in done.stderr and "━" not in done.stderr


def test_submit_with_a_preset_writes_the_analysis_beside_the_image(service: str, tmp_path: Path) -> None:
    source = tmp_path / "scene.png"
    source.write_bytes(make_image("RGB", (64, 48)))
    done = imgjobs(service, "submit", source, "--preset", "analyse", "--out", tmp_path / "out", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [outcome] = json.loads(done.stdout)
    assert outcome["status"] == "finished" and outcome["output"] == str(tmp_path / "out" / "scene.png")
    side = json.loads((tmp_path / "out" / "scene.png.json").read_text())
    assert [step["op"] for step in side["result"]["analysis"]] == ["palette", "hash", "stats"]


def test_no_wait_then_status_wait_get_ls_and_cancel(service: str, tmp_path: Path) -> None:
    source = tmp_path / "p.png"
    source.write_bytes(make_image())
    done = imgjobs(service, "submit", source, "--no-wait", "--format", "webp", "--json")
    assert done.returncode == 0, done.stderr
    [outcome] = json.loads(done.stdout)
    job_id = outcome["id"]
    assert outcome["status"] == "submitted" and outcome["output"] is None

    waited = imgjobs(service, "wait", job_id, "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "finished"
    assert re.match(rf"{job_id}  finished  100%  p.png", imgjobs(service, "status", job_id).stdout)

    got = imgjobs(service, "get", job_id, cwd=tmp_path)
    assert got.returncode == 0 and (tmp_path / "p.webp").is_file(), got.stdout + got.stderr
    explicit = imgjobs(service, "get", job_id, "-o", tmp_path / "copy.webp", "--json")
    assert json.loads(explicit.stdout)["bytes"] == (tmp_path / "copy.webp").stat().st_size

    listing = json.loads(imgjobs(service, "ls", "--json", "--per-page", "100").stdout)
    assert job_id in {job["id"] for job in listing["jobs"]}
    assert job_id in imgjobs(service, "ls", "--per-page", "100").stdout

    assert imgjobs(service, "cancel", job_id).stdout.strip() == f"{job_id}  deleted"
    gone = imgjobs(service, "status", job_id)
    assert gone.returncode == 1 and gone.stderr.startswith("Error: ") and "Traceback" not in gone.stderr


def test_ops_lists_the_catalogue_and_the_presets(service: str) -> None:
    catalog = json.loads(imgjobs(service, "ops", "--json").stdout)
    assert {p["name"] for p in catalog["presets"]} >= {"thumbnail-512", "pencil-sketch", "poster-8", "analyse"}
    table = imgjobs(service, "ops").stdout
    assert "resize" in table and "pencil-sketch" in table


def test_api_errors_are_their_message_not_a_traceback(service: str, tmp_path: Path) -> None:
    source = tmp_path / "p.png"
    source.write_bytes(make_image())
    bad = imgjobs(service, "submit", source, "--preset", "nope", "--out", tmp_path)
    assert bad.returncode == 1 and "Unknown preset 'nope'" in bad.stdout, bad.stdout
    down = imgjobs(f"http://127.0.0.1:{free_port()}", "status", "x")
    assert down.returncode == 1 and "Cannot reach" in down.stderr and "Traceback" not in down.stderr
    missing = imgjobs(service, "submit", tmp_path / "none.png")
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr


def test_live_bars_in_a_terminal(service: str, tmp_path: Path) -> None:
    for n in range(3):
        (tmp_path / f"p{n}.png").write_bytes(make_image("RGB", (300, 200)))
    command = [sys.executable, "-m", "client", "--url", service, "submit", str(tmp_path / "p*.png"),
               "--preset", "pencil-sketch", "--out", str(tmp_path / "out")]
    status, text = read_terminal(command)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert status == 0, plain
    assert "all files" in plain and "━" in plain and "3/3" in plain, plain
    assert "3 finished" in plain
    assert len(list((tmp_path / "out").glob("p*.png"))) == 3


# ---------------------------------------------------------------- a real server that answers 429 and 503


class Busy(BaseHTTPRequestHandler):
    """Answers the first posts with 429 and the first poll with 503, then like the service."""

    posts: list[bytes]
    auth: list[str | None]
    busy_posts = 2
    busy_polls = 1
    retry_after = "0"
    image = make_image()

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet."""

    def answer(self, status: int, body: bytes, kind: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def busy(self, status: int) -> None:
        error = {"error": {"status": status, "code": "busy", "message": "Too many requests."}}
        self.answer(status, json.dumps(error).encode(), Retry_After=self.retry_after)

    def do_POST(self) -> None:
        self.posts.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.auth.append(self.headers.get("Authorization"))
        if len(self.posts) <= self.busy_posts:
            return self.busy(429)
        self.answer(202, json.dumps({"id": "j1", "status": "queued", "progress": 0.0}).encode())

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/jobs/j1/result"):
            return self.answer(200, self.image, "image/png")
        type(self).busy_polls -= 1
        if self.busy_polls >= 0:
            return self.busy(503)
        job = {"id": "j1", "status": "finished", "progress": 1.0,
               "result": {"format": "png", "width": 64, "height": 48, "analysis": []}}
        self.answer(200, json.dumps(job).encode())


@pytest.fixture
def busy_server() -> Iterator[tuple[str, type[Busy]]]:
    """A real HTTP server on a free port with a fresh Busy handler; yields its URL and the handler class."""
    handler = type("BusyNow", (Busy,), {"posts": [], "auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_submit_retries_429_and_503_resending_the_whole_file(busy_server: tuple[str, type[Busy]],
                                                             tmp_path: Path) -> None:
    url, handler = busy_server
    source = tmp_path / "a.png"
    source.write_bytes(make_image("RGB", (64, 48)))
    command = [sys.executable, "-m", "client", "--url", url, "--key", "k-123", "submit", str(source),
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(handler.posts) == 3 and all(source.read_bytes() in body for body in handler.posts)
    assert handler.auth == ["Bearer k-123"] * 3
    assert (tmp_path / "out" / "a.png").read_bytes() == Busy.image
    assert "3 answers retried after 429/503" in done.stdout


def test_retry_after_is_honoured_up_to_a_cap(busy_server: tuple[str, type[Busy]], tmp_path: Path) -> None:
    url, handler = busy_server
    handler.busy_posts, handler.retry_after = 100, "3600"
    source = tmp_path / "a.png"
    source.write_bytes(make_image())
    slept: list[float] = []
    with pytest.raises(ApiProblem) as caught:
        Api(url, sleep=slept.append).submit(source, {})
    assert caught.value.status == 429 and caught.value.message == "Too many requests."
    assert slept == [MAX_PAUSE] * RETRIES and len(handler.posts) == RETRIES + 1


def test_without_retry_after_the_pause_doubles(busy_server: tuple[str, type[Busy]], tmp_path: Path) -> None:
    url, handler = busy_server
    handler.busy_posts, handler.retry_after = 3, "soon"
    source = tmp_path / "a.png"
    source.write_bytes(make_image())
    slept: list[float] = []
    assert Api(url, sleep=slept.append).submit(source, {})["id"] == "j1"
    assert slept == [1.0, 2.0, 4.0]


def test_an_upload_over_the_size_limit_fails_with_the_apis_reason(redis_server: RedisServer, data_dir: Path,
                                                                  tmp_path: Path) -> None:
    server = WebServer(service_env(redis_server.url, data_dir, MAX_UPLOAD_MB="0.05"), quiet=True)
    try:
        source = tmp_path / "noise.png"
        Image.effect_noise((400, 400), 80).save(source)  # about 160 KB: noise does not compress
        done = imgjobs(server.url, "submit", source, "--no-wait")
    finally:
        server.stop()
    assert done.returncode == 1
    assert "failed    noise.png: The upload is larger than the limit of 0.05 MB." in done.stdout


def test_submit_waits_out_the_services_own_rate_limit(redis_server: RedisServer, data_dir: Path,
                                                      worker: WorkerProcess, tmp_path: Path) -> None:
    server = WebServer(service_env(redis_server.url, data_dir, RATE_LIMIT="1/second"), quiet=True)
    try:
        for n in range(3):
            (tmp_path / f"p{n}.png").write_bytes(make_image())
        done = imgjobs(server.url, "submit", tmp_path / "p*.png", "--concurrency", "3", "--out", tmp_path / "out")
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 finished" in done.stdout and "retried after 429/503" in done.stdout, done.stdout
    assert len(list((tmp_path / "out").glob("p*.png"))) == 3
