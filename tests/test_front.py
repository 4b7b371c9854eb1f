"""The nginx front (deploy/nginx/) before gunicorn, as compose and `make dev` run it: slow clients
cost nothing, its own refusals are the API's JSON, and each client is still its own address."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.conftest import make_image
from tests.images import encode
from tests.services import Front, RedisServer, SlowUploads, WebServer, WorkerProcess, free_port, service_env

pytestmark = pytest.mark.skipif(not shutil.which("nginx"), reason="needs nginx (make system-deps installs it)")

SLOW_CLIENTS = 64


@pytest.fixture(scope="module")
def web(redis_server: RedisServer, data_dir: Path) -> Iterator[WebServer]:
    server = WebServer(service_env(redis_server.url, data_dir, RATE_LIMIT="1000/minute"), quiet=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def front(web: WebServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    proxy = Front(f"127.0.0.1:{web.port}", tmp_path_factory.mktemp("spool"))
    yield proxy
    proxy.stop()


def one_job(url: str, timeout: float = 30) -> bytes:
    """Upload a small image, wait for its job and download the result, as a normal client does."""
    files = {"file": ("photo.png", make_image(size=(320, 240)), "image/png")}
    created = requests.post(f"{url}/api/v1/jobs", files=files, data={"ops": '[{"op":"resize","width":64}]'},
                            timeout=timeout)
    assert created.status_code == 202, created.text
    job = requests.get(f"{url}{created.json()['links']['self']}?wait=20", timeout=timeout).json()
    assert job["status"] == "finished", job
    return requests.get(f"{url}{job['links']['result']}", timeout=timeout).content


def test_64_slow_uploads_do_not_hold_up_a_normal_job(front: Front, worker: WorkerProcess) -> None:
    slow = SlowUploads(front.port, SLOW_CLIENTS)  # four times gunicorn's 2 x 8 threads
    try:
        time.sleep(2)  # the slow bodies are under way
        assert one_job(front.url).startswith(b"\x89PNG")
        assert slow.answered() == 0  # every slow upload is still coming in, none was cut off
    finally:
        slow.close()


def test_a_large_upload_spools_through_the_front(front: Front, worker: WorkerProcess) -> None:
    """Over nginx's 256 KB body buffer the body goes to the spool (a private directory here)."""
    noise = encode(Image.effect_noise((700, 700), 80).convert("RGB"), "PNG")  # about 1 MB: noise does not compress
    created = requests.post(f"{front.url}/api/v1/jobs?wait=20", files={"file": ("noise.png", noise)},
                            data={"ops": '[{"op":"resize","width":64}]'}, timeout=60)
    assert len(noise) > 512 * 1024
    assert created.status_code == 201 and created.json()["status"] == "finished", created.text


def test_without_the_front_slow_uploads_hold_every_thread(redis_server: RedisServer, data_dir: Path) -> None:
    """What the front is for: gunicorn alone gives each slow body a thread until it ends."""
    server = WebServer(service_env(redis_server.url, data_dir, WEB_CONCURRENCY="1", WEB_THREADS="2"), quiet=True)
    slow = SlowUploads(server.port, 2)
    try:
        with pytest.raises(requests.Timeout):
            requests.get(f"{server.url}/healthz", timeout=3)
    finally:
        slow.close()
        server.stop()


def error_of(response: requests.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return dict(response.json()["error"])


def test_an_oversized_upload_gets_the_apis_own_answer_from_the_front(redis_server: RedisServer, data_dir: Path,
                                                                      tmp_path: Path) -> None:
    server = WebServer(service_env(redis_server.url, data_dir, MAX_UPLOAD_MB="0.05"), quiet=True)
    proxy = Front(f"127.0.0.1:{server.port}", tmp_path / "spool", MAX_UPLOAD_MB="0.05")
    try:
        body = {"file": ("big.png", b"x" * 100_000, "image/png")}
        from_front = error_of(requests.post(f"{proxy.url}/api/v1/jobs", files=body, timeout=10), 413)
        from_app = error_of(requests.post(f"{server.url}/api/v1/jobs", files=body, timeout=10), 413)
    finally:
        proxy.stop()
        server.stop()
    assert from_front == from_app == {"status": 413, "code": "upload_too_large",
                                      "message": "The upload is larger than the limit of 0.05 MB."}


def test_the_fronts_own_refusals_are_json(front: Front) -> None:
    header = error_of(requests.get(f"{front.url}/healthz", headers={"X-Big": "a" * 5000}, timeout=10), 400)
    assert header["code"] == "bad_request" and "4 KB" in header["message"]
    line = error_of(requests.get(f"{front.url}/{'a' * 5000}", timeout=10), 414)
    assert line["code"] == "uri_too_long"
    garbage = socket.create_connection(("127.0.0.1", front.port))
    garbage.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    reply = garbage.recv(4096).decode()
    garbage.close()
    assert reply.startswith("HTTP/1.1 400") and json.loads(reply.split("\r\n\r\n", 1)[1])["error"]["status"] == 400


def test_with_the_web_down_the_front_answers_503_json(tmp_path: Path) -> None:
    proxy = Front(f"127.0.0.1:{free_port()}", tmp_path / "spool")  # nothing listens there
    try:
        response = requests.get(f"{proxy.url}/api/v1/jobs", timeout=10)
    finally:
        proxy.stop()
    assert error_of(response, 503)["code"] == "web_unavailable"
    assert response.headers["Retry-After"] == "5"


def post_from(source: str, port: int, forwarded_for: str) -> int:
    """POST an empty job form from the loopback address `source`, claiming X-Forwarded-For; return the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/api/v1/jobs", body="--b--\r\n", headers={
            "Content-Type": "multipart/form-data; boundary=b", "X-Forwarded-For": forwarded_for})
        return conn.getresponse().status
    finally:
        conn.close()


def test_behind_the_front_each_client_is_its_own_address_and_cannot_claim_another(
        redis_server: RedisServer, data_dir: Path, tmp_path: Path) -> None:
    server = WebServer(service_env(redis_server.url, data_dir, RATE_LIMIT="2/minute"), quiet=True)
    proxy = Front(f"127.0.0.1:{server.port}", tmp_path / "spool")
    try:
        # 127.0.0.2 claims a new address each time: the front replaces the header, so it is one client.
        assert [post_from("127.0.0.2", proxy.port, f"203.0.113.{n}") for n in range(3)] == [400, 400, 429]
        # 127.0.0.3 is another client behind the same front (the web sees only the front's 127.0.0.1).
        assert post_from("127.0.0.3", proxy.port, "203.0.113.0") == 400
    finally:
        proxy.stop()
        server.stop()


def test_the_front_drops_what_a_killed_nginx_left_half_spooled(tmp_path: Path) -> None:
    left = tmp_path / "spool" / "body" / "0" / "00" / "0000000001"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half an upload")
    proxy = Front(f"127.0.0.1:{free_port()}", tmp_path / "spool")
    proxy.stop()
    assert not left.exists()
