"""The page against a service with API keys: it asks for a key, works with it, and shows results through share links."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_page import PHOTO, SMALL, add_step, card, expect, job_ids, pick
from tests.services import RedisServer, WebServer, WorkerProcess, service_env
from tests.test_auth import ALICE, BOB, KEY_FILE

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def keyed_server(
    redis_server: RedisServer, data_dir: Path, worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service under gunicorn with the test key file; yields its base URL."""
    directory = tmp_path_factory.mktemp("keyed-web")
    (directory / "api-keys").write_text(KEY_FILE)
    env = service_env(redis_server.url, data_dir, API_KEYS_FILE=directory / "api-keys")
    server = WebServer(env, log=directory / "gunicorn.log")
    yield server.url
    server.stop()


def sign_in(page, key):
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def api_get(url, key=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def test_the_page_asks_for_a_key_and_a_wrong_one_gets_a_message(page, keyed_server):
    page.goto(keyed_server)
    field = page.get_by_label("API key")
    expect(field).to_be_visible()
    expect(field).to_be_focused()
    assert field.get_attribute("type") == "password"
    expect(page.locator("#op-select")).to_be_disabled()  # the catalogue waits for the key

    sign_in(page, "not-the-key")
    expect(page.locator("#sign-in-error")).to_have_text("That API key was not accepted. Check it and try again.")
    expect(field).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('imgjobs.key')") is None

    sign_in(page, ALICE)
    expect(page.locator("#op-select")).to_be_enabled()
    expect(field).to_be_hidden()
    expect(page.get_by_text("Signed in with an API key.")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('imgjobs.key')") == ALICE
    assert page.evaluate("localStorage.getItem('imgjobs.key')") is None


def test_signed_in_the_page_processes_a_photo_and_shows_it_through_a_share_link(page, keyed_server):
    page.goto(keyed_server)
    sign_in(page, ALICE)
    expect(page.locator("#op-select")).to_be_enabled()
    pick(page, PHOTO)
    add_step(page, "resize")
    page.get_by_role("group", name="Step 1: resize").get_by_label("width").fill("320")
    page.get_by_role("button", name="Process 1 image").click()

    job = card(page, "photo.jpg")
    expect(job).to_have_attribute("data-status", "finished")
    after = job.locator("img.after")
    expect(after).to_have_js_property("naturalWidth", 320)
    source = after.get_attribute("src")
    assert "signature=" in source and "expires=" in source, source
    download = job.get_by_role("link", name="Download the result for photo.jpg")
    assert download.get_attribute("href") == source
    with page.expect_download() as download_info:
        download.click()
    with Image.open(download_info.value.path()) as image:
        assert image.size == (320, 240)

    status, body = api_get(keyed_server + source)  # the link works with no key at all
    assert status == 200 and body.startswith(b"\xff\xd8")
    [job_id] = job_ids(page)
    with pytest.raises(urllib.error.HTTPError) as hidden:
        api_get(f"{keyed_server}/api/v1/jobs/{job_id}", key=BOB)
    hidden.value.close()
    assert hidden.value.code == 404  # another key does not see it
    assert json.loads(api_get(f"{keyed_server}/api/v1/jobs/{job_id}", key=ALICE)[1])["status"] == "finished"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-signed-in.png"), full_page=True)


def test_sign_out_forgets_the_key_and_a_reload_asks_again(page, keyed_server):
    page.goto(keyed_server)
    sign_in(page, ALICE)
    expect(page.locator("#op-select")).to_be_enabled()
    pick(page, SMALL)
    page.get_by_role("button", name="Process 1 image").click()
    expect(card(page, "small.png")).to_have_attribute("data-status", "finished")

    page.reload()  # the key outlives a reload of the tab
    expect(card(page, "small.png")).to_have_attribute("data-status", "finished")
    expect(page.get_by_label("API key")).to_be_hidden()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('imgjobs.key')") is None
    sign_in(page, BOB)  # another key: the job of the first one is not shown
    expect(page.locator("#op-select")).to_be_enabled()
    expect(page.locator(".job")).to_have_count(0)
