"""Fixtures for the page tests: the real service under gunicorn, headless Chromium, photo-like images."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFilter

from tests.services import ROOT, RedisServer, WebServer, WorkerProcess, service_env

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts"
HELD_QUEUE = "page-held"  # no worker listens on it, so its jobs stay queued


def make_photo(size: tuple[int, int] = (1600, 1200), seed: int = 0, quality: int = 88) -> bytes:
    """Return a photo-like JPEG: a sky gradient, a sun, two hills, grain and a little blur."""
    width, height = size
    sky = Image.linear_gradient("L").resize(size)
    shift = seed * 25
    red, green, blue = (sky.point(lambda v: 30 + shift + v * 0.7), sky.point(lambda v: 90 + v * 0.45),
                        sky.point(lambda v: 210 - v * 0.4))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    sun = width * (0.62 + 0.08 * seed), height * 0.14
    draw.ellipse((sun[0], sun[1], sun[0] + width * 0.14, sun[1] + width * 0.14), fill=(255, 212, 110))
    draw.polygon([(0, height), (0, height * 0.62), (width * 0.35, height * 0.48), (width * 0.7, height * 0.7),
                  (width, height * 0.58), (width, height)], fill=(52, 112, 64))
    draw.polygon([(0, height), (0, height * 0.8), (width * 0.5, height * 0.68), (width, height * 0.86),
                  (width, height)], fill=(30, 78, 44))
    grain = Image.merge("RGB", [Image.effect_noise(size, 40)] * 3)
    image = Image.blend(image, grain, 0.1).filter(ImageFilter.GaussianBlur(1.2))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def web_server(
    redis_server: RedisServer, data_dir: Path, worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service, with the session's worker behind it; yields its base URL."""
    server = WebServer(service_env(redis_server.url, data_dir), log=tmp_path_factory.mktemp("web") / "gunicorn.log")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def held_server(redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second web process that queues on a queue no worker reads, so its jobs stay queued."""
    env = service_env(redis_server.url, data_dir, QUEUE_NAME=HELD_QUEUE)
    server = WebServer(env, log=tmp_path_factory.mktemp("held") / "gunicorn.log")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; a missing one fails loudly rather than skipping."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make test` installs it (or deselect with -m 'not browser')")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (or deselect with -m 'not browser')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """What a page reported: uncaught errors and Content-Security-Policy violations."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.violations: list[str] = []

    def message(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(message.text)

    def page_error(self, error: Any) -> None:
        self.errors.append(str(error))


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page (own localStorage); fails the test on script errors or CSP violations."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    console = Console()
    tab.on("console", console.message)
    tab.on("pageerror", console.page_error)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        failures = ARTIFACTS / "failures"
        failures.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(failures / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not console.errors, f"the page raised: {console.errors}"
    assert not console.violations, f"Content-Security-Policy violations: {console.violations}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep each test's call report on its item, so `page` can screenshot failures."""
    report = yield
    if report.when == "call":
        item.report_call = report  # type: ignore[attr-defined]
    return report
