"""API keys on a real Redis and worker: the 401/404 matrix, private jobs, key file reloads, the bind check."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import download, finished, make_image, submit
from tests.services import ROOT, free_port, service_env
from web import auth, clients, create_app

ALICE, BOB, ROOT_KEY, CAROL = (secrets.token_urlsafe(32) for _ in range(4))
KEY_FILE = f"""# name key options
alice {ALICE} rate=120/minute jobs=20
bob   {BOB}
root  {ROOT_KEY} admin   # sees every job
"""
SIGNING_KEY = secrets.token_urlsafe(32)

#: Every API route and method, with a job id to fill in.
API_CALLS = [
    ("GET", "/api/v1/ops"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}?wait=1"),
    ("DELETE", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}/result"),
    ("GET", "/api/v1/no-such-thing"),
    ("PUT", "/api/v1/jobs"),
]
OPEN_PATHS = ["/", "/healthz", "/readyz", "/metrics", "/static/page.css", "/static/js/app.js"]


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(KEY_FILE)
    return path


@pytest.fixture
def keyed_app(redis_server, data_dir, keys_file):
    config = {"TESTING": True, "REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "JOB_TIMEOUT": 30,
              "API_KEYS_FILE": str(keys_file), "SIGNING_KEY": SIGNING_KEY}
    app = create_app(config)
    yield app
    app.extensions["redis"].close()


def client_for(app: Flask, key: str | None) -> FlaskClient:
    """A test client that sends this key as its Bearer header (none for None)."""
    client = app.test_client()
    if key is not None:
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


@pytest.fixture
def alice(keyed_app):
    return client_for(keyed_app, ALICE)


@pytest.fixture
def bob(keyed_app):
    return client_for(keyed_app, BOB)


def call(client: FlaskClient, method: str, path: str, job_id: str):
    """Make one call of the matrix; a POST carries a valid upload."""
    url = path.format(id=job_id)
    if method == "POST":
        return submit(client, make_image(), [])
    response = client.open(url, method=method)
    response.get_data()
    response.close()
    return response


# ---------------------------------------------------------------- the key file


def test_key_file_lines_options_and_comments():
    keys = auth.parse(KEY_FILE)
    assert [k.name for k in keys] == ["alice", "bob", "root"]
    [carol] = auth.parse(f"  # a comment\n\ncarol {CAROL}#not-a-comment #a comment\n")
    assert carol.secret == f"{CAROL}#not-a-comment"
    assert keys[0].limits == {"rate": "120/minute", "jobs": 20} and not keys[0].admin
    assert keys[1].limits == {} and keys[2].admin
    assert ALICE not in repr(keys[0])


@pytest.mark.parametrize(("text", "reason"), [
    ("alice", "expected `name key"),
    (f"al:ce {ALICE}", "is not 1-64 letters"),
    ("alice short-key-of-31-characters-xx", "32 or more"),
    (f"alice {ALICE}\nalice {BOB}", "same name"),
    (f"alice {ALICE}\nbob {ALICE}", "same key"),
    (f"alice {ALICE} superuser", "word 3 is not"),
    (f"alice {ALICE} rate=fast", "word 3 is not"),
    (f"alice {ALICE} jobs=0", "word 3 is not"),
    (f"alice {ALICE} {BOB}", "word 3 is not"),
])
def test_bad_key_files_are_refused_without_showing_keys(text, reason):
    with pytest.raises(auth.KeyFileError, match=reason) as caught:
        auth.parse(text)
    assert ALICE not in str(caught.value) and BOB not in str(caught.value)


def test_a_bad_key_file_stops_the_app_from_starting(tmp_path, redis_server, data_dir):
    path = tmp_path / "keys"
    path.write_text(f"alice {ALICE[:20]}\n")
    with pytest.raises(auth.KeyFileError, match="line 1"):
        create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "API_KEYS_FILE": str(path)})
    with pytest.raises(auth.KeyFileError, match="No such file"):
        create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "API_KEYS_FILE": str(tmp_path / "x")})


def test_the_key_sets_the_callers_identity_and_limits(keyed_app):
    with keyed_app.test_request_context("/api/v1/ops", headers={"Authorization": f"Bearer {ALICE}"}):
        assert auth.authenticate() is None
        assert clients.current() == "key:alice"
        assert clients.overrides() == {"rate": "120/minute", "jobs": 20}
    with keyed_app.test_request_context("/api/v1/ops", headers={"Authorization": f"bearer  {BOB} "}):
        assert auth.authenticate() is None
        assert clients.current() == "key:bob" and clients.overrides() == {}


# ---------------------------------------------------------------- 401: no key, wrong key


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(("method", "path"), API_CALLS)
def test_every_api_call_needs_a_valid_key(keyed_app, alice, method, path):
    job_id = finished(alice, submit(alice, make_image(), []).get_json()["id"])["id"]
    refusals = [
        (None, "missing_key"),
        (f"Basic {ALICE}", "missing_key"),
        ("Bearer ", "missing_key"),
        (f"Bearer {ALICE[:-1]}{'x' if ALICE[-1] != 'x' else 'y'}", "invalid_key"),
        (f"Bearer {ALICE} {ALICE}", "invalid_key"),
    ]
    for header, code in refusals:
        client = keyed_app.test_client()
        if header is not None:
            client.environ_base["HTTP_AUTHORIZATION"] = header
        response = call(client, method, path, job_id)
        assert response.status_code == 401, (method, path, header)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="imgjobs"'
        assert response.get_json()["error"]["code"] == code
    assert finished(alice, job_id)["status"] == "finished"  # nothing a refused call did touched the job


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_probes_metrics_and_the_page_stay_open(keyed_app, path):
    response = keyed_app.test_client().get(path)
    response.close()
    assert response.status_code == 200, path


def test_without_keys_the_api_stays_open(client):
    assert client.get("/api/v1/ops").status_code == 200
    assert client.get("/api/v1/jobs").status_code == 200


# ---------------------------------------------------------------- 404: another key's jobs


@pytest.mark.usefixtures("worker")
def test_keys_cannot_see_fetch_cancel_or_delete_each_others_jobs(keyed_app, alice, bob, data_dir):
    mine = finished(alice, submit(alice, make_image(), [{"op": "grayscale"}]).get_json()["id"])
    theirs = finished(bob, submit(bob, make_image(), []).get_json()["id"])
    unknown = "0" * 32
    for method, path in API_CALLS[4:8]:
        response = call(bob, method, path, mine["id"])
        assert response.status_code == 404, (method, path)
        expected = call(bob, method, path, unknown).get_json()["error"]
        assert response.get_json()["error"] == {**expected, "message": expected["message"].replace(unknown, mine["id"])}
    assert (data_dir / "results" / f"{mine['id']}.png").exists()  # bob's DELETE removed nothing
    assert download(alice, mine["links"]["result"]).status_code == 200

    def listed(client):
        return {job["id"] for job in client.get("/api/v1/jobs?per_page=100").get_json()["jobs"]}

    assert mine["id"] in listed(alice) and theirs["id"] not in listed(alice)
    assert theirs["id"] in listed(bob) and mine["id"] not in listed(bob)
    assert alice.get("/api/v1/jobs").get_json()["total"] == len(listed(alice))

    admin = client_for(keyed_app, ROOT_KEY)
    assert {mine["id"], theirs["id"]} <= listed(admin)
    assert admin.get(f"/api/v1/jobs/{mine['id']}").status_code == 200
    assert admin.delete(f"/api/v1/jobs/{mine['id']}").status_code == 204
    assert alice.get(f"/api/v1/jobs/{mine['id']}").status_code == 404
    assert mine["id"] not in listed(alice)


@pytest.mark.usefixtures("worker")
def test_a_queued_job_of_another_key_cannot_be_canceled(keyed_app, alice, bob, data_dir):
    keyed_app.config["QUEUE_NAME"] = "nobody-listens"
    job_id = submit(alice, make_image(), []).get_json()["id"]
    assert bob.delete(f"/api/v1/jobs/{job_id}").status_code == 404
    assert alice.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "queued"
    assert (data_dir / "uploads" / job_id).exists()
    assert alice.delete(f"/api/v1/jobs/{job_id}").get_json()["status"] == "canceled"


# ---------------------------------------------------------------- rotating and revoking keys


def test_editing_the_key_file_adds_and_revokes_keys_without_a_restart(keyed_app, keys_file, caplog):
    carol = client_for(keyed_app, CAROL)
    assert carol.get("/api/v1/ops").status_code == 401
    keys_file.write_text(KEY_FILE + f"carol {CAROL}\n")
    assert carol.get("/api/v1/ops").status_code == 200
    keys_file.write_text(f"carol {CAROL}\n")  # alice, bob and root revoked
    assert client_for(keyed_app, ALICE).get("/api/v1/ops").get_json()["error"]["code"] == "invalid_key"
    assert carol.get("/api/v1/ops").status_code == 200
    with caplog.at_level(logging.ERROR, logger="web.auth"):
        keys_file.write_text(f"carol {CAROL}\nbroken\n")
        assert carol.get("/api/v1/ops").status_code == 200  # a broken edit keeps the last good keys
    assert "not reloaded" in caplog.text and CAROL not in caplog.text
    keys_file.write_text(f"bob {BOB}\n")
    assert carol.get("/api/v1/ops").status_code == 401
    assert client_for(keyed_app, BOB).get("/api/v1/ops").status_code == 200


# ---------------------------------------------------------------- metrics


@pytest.mark.usefixtures("worker")
def test_metrics_count_jobs_and_refusals_per_key(keyed_app, alice):
    from tests.test_metrics import sample

    def counts():
        text = keyed_app.test_client().get("/metrics").text
        return (_sample(sample, text, 'imgjobs_key_jobs_total{key="alice"}'),
                _sample(sample, text, 'imgjobs_key_rejections_total{key="(none)",reason="unauthorized"}'))

    jobs, refused = counts()
    finished(alice, submit(alice, make_image(), []).get_json()["id"])
    keyed_app.test_client().get("/api/v1/jobs")
    client_for(keyed_app, "not-a-key").get("/api/v1/jobs")
    assert counts() == (jobs + 1, refused + 2)


def test_metrics_count_each_keys_429s_by_reason(keyed_app, keys_file):
    from tests.test_metrics import sample

    tight, capped = f"tight-{secrets.token_hex(4)}", f"capped-{secrets.token_hex(4)}"
    keys_file.write_text(KEY_FILE + f"{tight} {CAROL} rate=1/minute\n{capped} {CAROL[::-1]} jobs=1\n")
    keyed_app.config["QUEUE_NAME"] = "nobody-listens"
    fast, many = client_for(keyed_app, CAROL), client_for(keyed_app, CAROL[::-1])
    assert fast.post("/api/v1/jobs").status_code == 400  # counted by the rate limit all the same
    assert fast.post("/api/v1/jobs").status_code == 429
    job_id = submit(many, make_image(), []).get_json()["id"]
    assert submit(many, make_image(), []).get_json()["error"]["code"] == "too_many_jobs"
    text = keyed_app.test_client().get("/metrics").text
    assert sample(text, f'imgjobs_key_rejections_total{{key="{tight}",reason="rate_limited"}}') == 1
    assert sample(text, f'imgjobs_key_rejections_total{{key="{capped}",reason="too_many_jobs"}}') == 1
    assert sample(text, f'imgjobs_key_jobs_total{{key="{capped}"}}') == 1
    many.delete(f"/api/v1/jobs/{job_id}")


def _sample(sample, text, name):
    """Return a sample's value, 0 when it is not there yet."""
    return sample(text, name) if name in text else 0.0


def test_metrics_can_take_their_own_token(redis_server, data_dir):
    token = secrets.token_urlsafe(32)
    app = create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "METRICS_TOKEN": token})
    assert app.test_client().get("/metrics").status_code == 401
    assert client_for(app, "wrong").get("/metrics").status_code == 401
    assert client_for(app, token).get("/metrics").status_code == 200
    assert app.test_client().get("/api/v1/ops").status_code == 200  # the token does not turn keys on
    app.extensions["redis"].close()


# ---------------------------------------------------------------- listening beyond loopback


@pytest.mark.parametrize(("addresses", "config", "refused"), [
    ([("127.0.0.1", 5000)], {}, False),
    ([("::1", 5000), ("localhost", 5000), ("127.0.0.2", 80), "/run/web.sock"], {}, False),
    ([("0.0.0.0", 5000)], {}, True),
    ([("127.0.0.1", 5000), ("192.0.2.7", 5000)], {}, True),
    ([("::", 5000)], {}, True),
    ([("example.org", 5000)], {}, True),
    ([("0.0.0.0", 5000)], {"API_KEYS_FILE": "/run/secrets/api_keys"}, False),
    ([("0.0.0.0", 5000)], {"ALLOW_ANONYMOUS": 1}, False),
])
def test_which_binds_need_keys(addresses, config, refused):
    problem = auth.open_bind_problem(addresses, {"API_KEYS_FILE": "", "ALLOW_ANONYMOUS": 0, **config})
    assert bool(problem) == refused
    if refused:
        assert "API_KEYS_FILE" in problem and "ALLOW_ANONYMOUS=1" in problem


def test_gunicorn_refuses_to_listen_on_every_address_without_keys(redis_server, tmp_path):
    env = service_env(redis_server.url, tmp_path, HOST="0.0.0.0", PORT=free_port())
    env.pop("API_KEYS_FILE", None)
    env.pop("ALLOW_ANONYMOUS", None)
    process = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "web:create_app()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert process.returncode == 1
    assert "refusing to listen on 0.0.0.0" in process.stderr and "ALLOW_ANONYMOUS=1" in process.stderr
