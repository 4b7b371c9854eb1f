"""Cost bounds: each attack of issue 8 reproduced on real processes, and its defined answer."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from PIL import Image
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.conftest import ROOT, finished, make_image, submit, wait_until
from tests.services import RedisServer, WorkerProcess, service_env
from tests.test_uploads import error_of

DOT = make_image(size=(1, 1))


@pytest.fixture
def own_queue(app, redis_server: RedisServer, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a worker of its own on a queue of its own, with the settings the test is marked with."""
    marker = request.node.get_closest_marker("worker_env")
    settings = marker.kwargs if marker else {}
    name = f"limits-{request.node.name[:40]}"
    connection = redis.Redis.from_url(redis_server.url)
    process = WorkerProcess(service_env(redis_server.url, data_dir, QUEUE_NAME=name, **settings), connection)
    app.config["QUEUE_NAME"] = name
    yield name
    process.stop()
    assert process.process.returncode == 0  # it survived the test and stopped cleanly
    connection.close()


# ---------------------------------------------------------------- 1. a pixel budget for every step

@pytest.mark.parametrize(
    ("ops", "step"),
    [
        ([{"op": "pad", "border": 16384}], 1),
        ([{"op": "resize", "width": 16384, "height": 16384, "fit": "fill"}], 1),
        ([{"op": "resize", "width": 6000, "height": 6000, "fit": "fill"}, {"op": "rotate", "angle": 45},
          {"op": "pad", "border": 16384}], 2),
    ],
)
def test_a_chain_that_builds_a_bomb_is_refused_before_queueing(client, data_dir, ops, step):
    before = set(data_dir.rglob("*"))
    error = error_of(submit(client, DOT, ops), 422)
    assert error["code"] == "too_many_pixels" and error["step"] == step
    assert f"step {step} (" in error["message"] and "50,000,000 pixels" in error["message"]
    assert set(data_dir.rglob("*")) == before


def test_the_budget_starts_from_the_upright_size(client):
    """A 10x400 photo turned by EXIF is 400x10 when the steps run: resize height=400 makes 16000x400."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (10, 400)).save(buffer, "JPEG", exif=exif)
    client.application.config["MAX_PIXELS"] = 1_000_000
    ops = [{"op": "resize", "height": 400, "fit": "contain"}]
    error = error_of(submit(client, buffer.getvalue(), ops, filename="turned.jpg"), 422)
    assert "16000x400" in error["message"]


def test_the_worker_checks_the_budget_again_before_each_step(app, client, own_queue, data_dir, redis_client):
    """A job that reaches Redis without the web's check still cannot build the bomb."""
    from web import store

    job_id = "b" * 32
    (data_dir / "uploads" / job_id).write_bytes(DOT)
    spec = {"ops": [{"op": "grayscale"}, {"op": "pad", "width": None, "height": None, "border": 16384, "fill": None}],
            "format": "png", "quality": None}
    with app.app_context():
        store.enqueue(job_id, spec, {"format": "PNG", "width": 1, "height": 1})
    job = finished(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "too_many_pixels" and "step 2 (pad)" in job["error"]["message"]
    assert Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer).retries_left == 0


# ---------------------------------------------------------------- 2. memory a job cannot exceed

@pytest.mark.worker_env(WORKER_MEMORY_MB=400, MAX_PIXELS=10**9, MAX_DIMENSION=10**6)
def test_a_job_over_the_memory_limit_fails_once_and_the_worker_goes_on(app, client, own_queue, redis_client):
    app.config.update(MAX_PIXELS=10**9, MAX_DIMENSION=10**6, JOB_RETRIES=2)
    ops = [{"op": "resize", "width": 16384, "height": 16384, "fit": "fill"}]  # 268 MP: about 1 GB in RGB(X)
    job = finished(client, submit(client, DOT, ops).get_json()["id"], wait=30)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "out_of_memory" and "WORKER_MEMORY_MB" in job["error"]["message"]
    assert Job.fetch(job["id"], connection=redis_client, serializer=JSONSerializer).retries_left == 0
    assert finished(client, submit(client, make_image(), [{"op": "resize", "width": 16}]).get_json()["id"])[
        "status"] == "finished"


def test_memory_limit_is_sized_from_max_pixels():
    from imgjobs.config import from_env, memory_limit

    small, large = memory_limit(from_env({"MAX_PIXELS": "1000000"})), memory_limit(from_env({}))
    assert small < large and memory_limit(from_env({"WORKER_MEMORY_MB": "300"})) == 300 * 2**20


# ---------------------------------------------------------------- 3. the web never holds decoded pixels

PEAK = """
import resource, sys
from pathlib import Path
from web.uploads import inspect
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = inspect(Path(sys.argv[1]), 10**9)
print(info.width * info.height, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_the_upload_check_never_decodes_pixels(tmp_path):
    """A few KB of lossless WebP that decodes to 100 MB costs the web process (almost) nothing."""
    bomb = tmp_path / "bomb.webp"
    Image.new("RGB", (5000, 5000), "white").save(bomb, "WEBP", lossless=True, method=0, quality=0)
    assert bomb.stat().st_size < 100_000
    out = subprocess.run([sys.executable, "-c", PEAK, str(bomb)], cwd=ROOT, capture_output=True, text=True, check=True)
    pixels, grown_kb = map(int, out.stdout.split())
    assert pixels == 25_000_000
    assert grown_kb < 10_000, f"the check grew the process by {grown_kb} KB"


def cut_jpeg() -> bytes:
    """Return a JPEG cut in half: its header is whole, its pixels are not."""
    data = make_image(size=(640, 480), fmt="JPEG")
    return data[: len(data) // 2]


def corrupt_png_data() -> bytes:
    """Return a PNG whose compressed pixels are garbage under valid chunk CRCs."""
    import struct
    import zlib

    data = bytearray(make_image(size=(300, 300)))
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    data[start + 10 : start + length] = bytes(length - 10)
    data[start + length : start + length + 4] = struct.pack(">I", zlib.crc32(data[start - 4 : start + length]))
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "name"),
    [(cut_jpeg, "cut.jpg"), (lambda: make_image(size=(300, 300))[:-200], "cut.png"), (corrupt_png_data, "bad.png")],
    ids=["truncated-jpeg", "truncated-png", "corrupt-png-data"],
)
def test_a_broken_file_is_refused_at_upload_or_fails_its_job_with_a_reason(client, worker, data_dir, make, name):
    response = submit(client, make(), [], filename=name)
    if response.status_code == 422:
        assert error_of(response, 422)["code"] == "undecodable_image"
        return
    assert response.status_code == 202, response.data
    job = finished(client, response.get_json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "undecodable_image" and "could not be decoded" in job["error"]["message"]
    wait_until(lambda: not list(data_dir.glob(f"*/{job['id']}*")), what="the upload to be removed")


# ---------------------------------------------------------------- 5. input hygiene

def test_a_long_filename_is_cut_and_costs_redis_little(client, redis_client):
    response = submit(client, make_image(), [], filename="é" * 30_000 + ".png")  # 60 KB of UTF-8
    assert response.status_code == 202, response.data
    job = response.get_json()
    assert job["input"]["filename"] == "é" * 127  # 254 bytes: the 255th would split a character
    assert redis_client.memory_usage(f"rq:job:{job['id']}") < 20_000
    client.delete(f"/api/v1/jobs/{job['id']}")


def post_in_memory(client, fields: dict) -> object:
    """POST a multipart form built in memory (the test client spools big ones to a file it never closes)."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    values = {k: FileStorage(*v) if isinstance(v, tuple) else v for k, v in fields.items()}
    boundary, body = encode_multipart(values)
    return client.post("/api/v1/jobs", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_a_filename_over_the_form_limit_is_413(client):
    fields = {"file": (io.BytesIO(make_image()), "a" * 600_000 + ".png"), "ops": "[]"}
    error = error_of(post_in_memory(client, fields), 413)
    assert error["code"] == "field_too_large" and "filename" in error["message"]


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ("[" * 1000, "nested too deeply"),
        ("[" * 200, "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "ops is over 64 KB"),
        ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
        ('[{"op": "resize", "width": ' + "9" * 5000 + "}]", "too long"),
        ('[{"op": "resize", "width": 1e999}]', "width must be an integer"),
        ('[{"op": "blur", "radius": ' + "9" * 4000 + "}]", "radius must be a number from 0 to 250, got 99999"),
        ('[{"op": "resize", "width": true}]', "width must be an integer"),
        ('[{"op": "pad", "border": 2, "fill": "#FFFFFF\\n"}]', "fill must be a colour"),
        ('[{"op": "blur", "radius": NaN}]', "radius must be a number"),
    ],
    ids=["deep-unclosed", "unclosed", "too-big", "deep", "long-int", "infinite", "long-float", "bool", "colour-newline",
         "nan"],
)
def test_hostile_ops_are_400_never_500(client, ops, words):
    response = post_in_memory(client, {"file": (io.BytesIO(make_image()), "photo.png"), "ops": ops})
    error = error_of(response, 400)
    assert words in error["message"], error
    assert error["code"] == "invalid_ops"


@pytest.mark.parametrize("quality", ["٥٠", "1_0", " 50", "50 ", "1e2", "+50", "0x32"])
def test_quality_takes_only_plain_digits(client, quality):
    error = error_of(submit(client, make_image(), [], format="jpeg", quality=quality), 400)
    assert error["code"] == "invalid_output"


def test_a_big_text_field_is_413_saying_which_limit(client):
    fields = {"file": (io.BytesIO(make_image()), "photo.png"), "format": "x" * 600_000}
    error = error_of(post_in_memory(client, fields), 413)
    assert error["code"] == "field_too_large" and "256 KB" in error["message"] and "25 MB" not in error["message"]


def test_an_upload_far_over_the_field_limit_is_still_a_file_not_a_field(client):
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()  # noise does not compress: a PNG of well over 1 MB, sixteen times the field limit
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (900, 900, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    assert len(data) > 1_000_000
    response = post_in_memory(client, {"file": (io.BytesIO(data), "photo.png"), "ops": "[]"})
    assert response.status_code == 202, response.get_json()


# ---------------------------------------------------------------- 8. safe defaults

def test_results_are_private_and_same_origin(client, worker):
    from tests.conftest import download

    job = finished(client, submit(client, make_image(), []).get_json()["id"])
    headers = download(client, job["links"]["result"]).headers
    assert headers["Cache-Control"] == "private, max-age=3600"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_make_dev_binds_to_this_machine_only_by_default():
    from imgjobs.config import from_env

    assert from_env({})["HOST"] == "127.0.0.1"


# ---------------------------------------------------------------- 4. per-client limits and fairness

def post_as(client, address: str, data: bytes | None = None, ops: str = "[]"):
    """POST a job as the client at `address`; without data, a request that is refused as 400."""
    fields = {"ops": ops} if data is None else {"file": (io.BytesIO(data), "photo.png"), "ops": ops}
    return client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data",
                       environ_base={"REMOTE_ADDR": address})


def test_a_client_over_its_rate_gets_429_and_others_do_not(app, client):
    app.config["RATE_LIMIT"] = "3/minute"
    for _ in range(3):
        assert error_of(post_as(client, "10.8.0.1"), 400)["code"] == "missing_file"  # counted all the same
    response = post_as(client, "10.8.0.1")
    error = error_of(response, 429)
    assert error["code"] == "rate_limited" and "3 per 1 minute" in error["message"]
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert error_of(post_as(client, "10.8.0.2"), 400)["code"] == "missing_file"


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(app, client):
    app.config.update(RATE_LIMIT="2/minute", FORWARDED_ALLOW_IPS="10.9.0.0/24")

    def via_proxy(client_address: str, proxy: str = "10.9.0.5"):
        return client.post("/api/v1/jobs", data={"ops": "[]"}, content_type="multipart/form-data",
                           headers={"X-Forwarded-For": client_address}, environ_base={"REMOTE_ADDR": proxy})

    for _ in range(2):
        error_of(via_proxy("203.0.113.7"), 400)
    assert error_of(via_proxy("203.0.113.7"), 429)["code"] == "rate_limited"
    assert error_of(via_proxy("203.0.113.8"), 400)["code"] == "missing_file"  # another client behind the same proxy
    # From an untrusted peer the header is the client's own claim, and ignored: 10.9.1.1 is one client.
    for claimed in ("198.51.100.1", "198.51.100.2"):
        error_of(via_proxy(claimed, proxy="10.9.1.1"), 400)
    assert error_of(via_proxy("198.51.100.3", proxy="10.9.1.1"), 429)["code"] == "rate_limited"


@pytest.mark.parametrize(("peer", "header", "trusted", "expected"), [
    ("10.0.0.2", "", "127.0.0.1", "10.0.0.2"),  # no proxy
    ("10.0.0.2", "1.2.3.4", "127.0.0.1", "10.0.0.2"),  # an untrusted peer's header is ignored
    ("127.0.0.1", "1.2.3.4", "127.0.0.1", "1.2.3.4"),
    ("127.0.0.1", "6.6.6.6, 1.2.3.4", "127.0.0.1", "1.2.3.4"),  # only the hop our proxy added counts
    ("127.0.0.1", "1.2.3.4, 10.0.0.9", "127.0.0.1, 10.0.0.0/8", "1.2.3.4"),  # two proxies in a row
    ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"),  # a client on the proxy's own host
    ("172.18.0.3", "1.2.3.4", "*", "1.2.3.4"),
    ("127.0.0.1", "not-an-address", "127.0.0.1", "127.0.0.1"),  # garbage is ignored, not an identity
    ("127.0.0.1", "1.2.3.4, " + "x" * 500, "127.0.0.1", "127.0.0.1"),
])
def test_client_address_reads_x_forwarded_for_only_through_trusted_proxies(peer, header, trusted, expected):
    from web.clients import client_address, trusted_networks

    assert client_address(peer, header, trusted_networks(trusted)) == expected


def test_a_bad_forwarded_allow_ips_stops_the_app_at_start(tmp_path, monkeypatch):
    from imgjobs.config import ConfigError
    from web import create_app

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/33")
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        create_app({"DATA_DIR": str(tmp_path)})


def test_an_api_key_has_its_own_rate(app, client):
    from flask import g

    def sign_in() -> None:
        g.key_name, g.key_limits = "batch", {"rate": "2/minute"}

    app.before_request_funcs.setdefault(None, []).insert(0, sign_in)  # as the accounts code does, before limits
    for _ in range(2):
        error_of(post_as(client, "10.8.1.1"), 400)
    assert error_of(post_as(client, "10.8.1.2"), 429)["code"] == "rate_limited"  # the key, from any address


def test_a_client_over_its_jobs_cap_gets_429_until_one_ends(app, client):
    app.config.update(JOBS_PER_CLIENT=2, QUEUE_NAME="limits-nobody-serves")
    first, second = (post_as(client, "10.8.2.1", make_image()).get_json()["id"] for _ in range(2))
    response = post_as(client, "10.8.2.1", make_image())
    error = error_of(response, 429)
    assert error["code"] == "too_many_jobs" and "2 jobs" in error["message"]
    assert 5 <= int(response.headers["Retry-After"]) <= 60  # ours, or the rate window's reset if later
    assert post_as(client, "10.8.2.2", make_image()).status_code == 202  # another client is not held back
    client.delete(f"/api/v1/jobs/{first}")
    third = post_as(client, "10.8.2.1", make_image())
    assert third.status_code == 202, third.data
    for job_id in (second, third.get_json()["id"]):
        client.delete(f"/api/v1/jobs/{job_id}")


def test_a_claim_drops_ended_and_long_unclaimed_ids_and_keeps_the_rest(app, client, redis_client):
    import time

    from web import limits
    from web.errors import ApiError

    key, now = "imgjobs:inflight:ip:10.8.3.1", time.time()
    redis_client.zadd(key, {"done": now, "stopped": now, "queued": now, "stale": now - 2 * limits.CLAIM_GRACE,
                            "fresh": now})
    for job_id, state in (("done", "finished"), ("stopped", "stopped"), ("queued", "queued")):
        redis_client.hset(Job.key_for(job_id), "status", state)
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.8.3.1"}):
        limits.claim("new")
    assert set(redis_client.zrange(key, 0, -1)) == {b"queued", b"fresh", b"new"}
    assert 0 < redis_client.ttl(key) <= app.config["FAILURE_TTL"]
    app.config["JOBS_PER_CLIENT"] = 3
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.8.3.1"}), pytest.raises(ApiError) as refused:
        limits.claim("one-too-many")
    assert refused.value.code == "too_many_jobs"
    assert set(redis_client.zrange(key, 0, -1)) == {b"queued", b"fresh", b"new"}  # the refused id is not kept
    redis_client.delete(key, *(Job.key_for(job_id) for job_id in ("done", "stopped", "queued")))


def test_a_heavy_job_goes_to_the_heavy_queue_which_workers_serve_too(app, client, worker, redis_client):
    app.config["HEAVY_PIXELS"] = 64 * 48 * 2
    light = finished(client, submit(client, make_image(), []).get_json()["id"])
    heavy = finished(client, submit(client, make_image(), [{"op": "grayscale"}, {"op": "invert"}]).get_json()["id"])
    origins = [Job.fetch(j["id"], connection=redis_client, serializer=JSONSerializer).origin for j in (light, heavy)]
    assert origins == ["images", "images-heavy"]
    assert light["status"] == heavy["status"] == "finished"


# ---------------------------------------------------------------- 6. Redis is not an open door

def test_redis_wants_the_password(redis_server):
    stranger = redis.Redis(host="127.0.0.1", port=redis_server.port)
    with pytest.raises(redis.AuthenticationError):
        stranger.ping()
    stranger.close()


def test_the_worker_runs_only_its_own_task(client, worker, redis_client, tmp_path):
    """What RQ would otherwise import and run: any dotted path a job in Redis names."""
    from rq import Queue

    proof = tmp_path / "owned"
    job = Queue("images", connection=redis_client, serializer=JSONSerializer).enqueue("os.system", f"touch {proof}")
    wait_until(lambda: job.get_status(refresh=True) == "failed", what="the job to be refused")
    job.refresh()
    assert job.meta["error"]["code"] == "refused_job" and "'os.system'" in job.meta["error"]["message"]
    assert not proof.exists()
    assert finished(client, submit(client, make_image(), []).get_json()["id"])["status"] == "finished"


# ---------------------------------------------------------------- 7. no cross-site job creation

@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, {"Sec-Fetch-Site": "same-site"},
     {"Origin": "https://evil.example"}],
    ids=["fetch-metadata", "same-site", "origin-only"],
)
def test_a_page_on_another_site_cannot_create_or_delete_jobs(client, data_dir, headers):
    before = set(data_dir.rglob("*"))
    fields = {"file": (io.BytesIO(make_image()), "photo.png"), "ops": "[]"}
    response = client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data", headers=headers)
    assert error_of(response, 403)["code"] == "cross_site_request"
    assert error_of(client.delete(f"/api/v1/jobs/{'0' * 32}", headers=headers), 403)["code"] == "cross_site_request"
    assert set(data_dir.rglob("*")) == before
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}, {"Origin": "http://localhost"}],
    ids=["curl", "the-page", "older-browser"],
)
def test_curl_and_the_page_itself_still_create_jobs(client, headers):
    fields = {"file": (io.BytesIO(make_image()), "photo.png"), "ops": "[]"}
    response = client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data", headers=headers)
    assert response.status_code == 202, response.data
    client.delete(f"/api/v1/jobs/{response.get_json()['id']}")


def test_cors_origins_lets_a_listed_site_in(app, client):
    app.config["CORS_ORIGINS"] = "https://app.example, https://other.example"
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example"}
    fields = {"file": (io.BytesIO(make_image()), "photo.png"), "ops": "[]"}
    response = client.post("/api/v1/jobs", data=fields, content_type="multipart/form-data", headers=headers)
    assert response.status_code == 202 and response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    client.delete(f"/api/v1/jobs/{response.get_json()['id']}")
    preflight = client.options("/api/v1/jobs/" + "0" * 32, headers=headers)
    assert "DELETE" in preflight.headers["Access-Control-Allow-Methods"]
