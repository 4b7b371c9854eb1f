"""Signed share links: good without a key, refused when any byte changes, when expired, or signed with a retired key."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import download, finished, make_image, submit
from tests.test_auth import ALICE, BOB, KEY_FILE, SIGNING_KEY, client_for
from web import create_app, share

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def make_app(redis_server, data_dir, tmp_path):
    apps = []
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(KEY_FILE)

    def make(**config):
        settings = {"TESTING": True, "REDIS_URL": redis_server.url, "DATA_DIR": str(data_dir), "JOB_TIMEOUT": 30,
                    "API_KEYS_FILE": str(keys_file), "SIGNING_KEY": SIGNING_KEY, **config}
        apps.append(create_app(settings))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["redis"].close()


def shared_job(app):
    """Let alice make a finished job; return its JSON."""
    alice = client_for(app, ALICE)
    return finished(alice, submit(alice, make_image(size=(80, 60)), [{"op": "sepia"}]).get_json()["id"])


def parts(link):
    """Split a share link into its path, expiry and signature."""
    url = urlsplit(link)
    query = parse_qs(url.query)
    return url.path, query["expires"][0], query["signature"][0]


def changed(text, index):
    """Return `text` with the character at `index` replaced by another of the same kind."""
    old = text[index]
    new = {"0": "1"}.get(old, "0") if old.isdigit() else ("A" if old != "A" else "B")
    return text[:index] + new + text[index + 1:]


def test_a_share_link_serves_the_result_without_a_key(make_app):
    app = make_app()
    job = shared_job(app)
    link = job["links"]["share"]
    path, expires, signature = parts(link)
    assert path == job["links"]["result"]
    ttl = int(expires) - int(time.time())  # the link's expiry, one SHARE_TTL (3600 s) from now
    assert 3500 < ttl <= 3600
    stranger = app.test_client()
    shared = download(stranger, link)
    assert shared.status_code == 200 and shared.mimetype == "image/png"
    assert shared.data == download(client_for(app, ALICE), job["links"]["result"]).data
    assert download(client_for(app, BOB), link).status_code == 200  # the link, not the key, grants it
    assert stranger.get(job["links"]["result"]).status_code == 401
    # made to be embedded anywhere: no same-origin resource policy on the link, nothing kept by shared caches
    assert shared.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert download(client_for(app, ALICE), job["links"]["result"]).headers["Cross-Origin-Resource-Policy"] == (
        "same-origin"
    )
    assert "public" not in shared.headers["Cache-Control"]


def test_changing_any_byte_of_path_expiry_or_signature_is_refused(make_app):
    app = make_app()
    path, expires, signature = parts(shared_job(app)["links"]["share"])
    stranger = app.test_client()
    prefix = len("/api/v1/")
    # a change in /api/v1/ itself leaves the API: no such page (404); any other change is a bad signature (403)
    outside = [f"{changed(path, i)}?expires={expires}&signature={signature}" for i in range(prefix) if path[i] != "/"]
    tampered = [f"{changed(path, i)}?expires={expires}&signature={signature}" for i in range(prefix, len(path))]
    tampered += [f"{path}?expires={changed(expires, i)}&signature={signature}" for i in range(len(expires))]
    tampered += [f"{path}?expires={expires}&signature={changed(signature, i)}" for i in range(len(signature))]
    tampered += [f"{path}?expires={expires}0&signature={signature}", f"{path}?expires={expires}&signature={signature}A",
                 f"{path}?expires={expires}&signature=", f"{path}?expires=&signature={signature}",
                 f"{path}?signature={signature}", f"{path}?expires=-{expires}&signature={signature}",
                 f"{path}?expires={expires}&signature=%C3%A9", f"{path}?expires=%D9%A1&signature={signature}"]
    for url in outside + tampered:
        response = stranger.get(url)
        expected = (404, "not_found") if url in outside else (403, "invalid_signature")
        assert (response.status_code, response.get_json()["error"]["code"]) == expected, url
    assert stranger.delete(f"{path}?expires={expires}&signature={signature}").status_code == 403
    assert download(stranger, f"{path}?expires={expires}&signature={signature}").status_code == 200


def test_a_link_stops_working_when_it_expires(make_app):
    app = make_app(SHARE_TTL=1)
    link = shared_job(app)["links"]["share"]
    deadline = int(parts(link)[1])
    time.sleep(max(0.0, deadline + 1.05 - time.time()))
    response = app.test_client().get(link)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "link_expired"


def test_an_expired_link_cannot_be_made_good_by_changing_its_expiry(make_app):
    app = make_app()
    path = shared_job(app)["links"]["result"]
    past = int(time.time()) - 10
    with app.test_request_context():
        signature = share.sign(path, past, SIGNING_KEY.encode())
    stranger = app.test_client()
    assert stranger.get(f"{path}?expires={past}&signature={signature}").get_json()["error"]["code"] == "link_expired"
    future = past + 3600
    assert stranger.get(f"{path}?expires={future}&signature={signature}").get_json()["error"]["code"] == (
        "invalid_signature")


def test_rotating_the_signing_key_keeps_links_of_the_old_one_until_it_is_dropped(make_app):
    new = secrets.token_urlsafe(32)
    old_link = shared_job(make_app())["links"]["share"]
    rotated = make_app(SIGNING_KEY=f"{new},{SIGNING_KEY}")
    assert download(rotated.test_client(), old_link).status_code == 200
    new_link = shared_job(rotated)["links"]["share"]
    path, expires, signature = parts(new_link)
    with rotated.test_request_context():
        assert signature == share.sign(path, expires, new.encode())  # the first key signs
    dropped = make_app(SIGNING_KEY=new)
    assert download(dropped.test_client(), new_link).status_code == 200
    assert dropped.test_client().get(old_link).get_json()["error"]["code"] == "invalid_signature"


def test_signing_keys_from_a_file_and_too_short_ones(make_app, tmp_path):
    from imgjobs.config import ConfigError

    path = tmp_path / "signing-key"
    path.write_text(f"{SIGNING_KEY}\n")
    link = shared_job(make_app(SIGNING_KEY="", SIGNING_KEY_FILE=str(path)))["links"]["share"]
    assert download(make_app().test_client(), link).status_code == 200
    with pytest.raises(ConfigError, match="32 characters"):
        make_app(SIGNING_KEY="too-short")
    with pytest.raises(ConfigError, match="SHARE_TTL"):
        make_app(SHARE_TTL=0)


def test_without_a_signing_key_every_process_shares_a_generated_one(make_app):
    link = shared_job(make_app(SIGNING_KEY=""))["links"]["share"]
    other_process = make_app(SIGNING_KEY="")
    assert download(other_process.test_client(), link).status_code == 200
    assert other_process.test_client().get(link.replace("signature=", "signature=x")).status_code == 403


def test_a_link_to_a_deleted_job_is_gone(make_app):
    app = make_app()
    job = shared_job(app)
    assert client_for(app, ALICE).delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    assert app.test_client().get(job["links"]["share"]).get_json()["error"]["code"] == "job_not_found"


def test_no_share_links_without_keys(client):
    job = finished(client, submit(client, make_image(), []).get_json()["id"])
    assert set(job["links"]) == {"self", "result"}
