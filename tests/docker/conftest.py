"""Fixtures for the container tests: one live stack per session, always torn down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.docker.stack import NOTES, Stack, engine_ready, report, standin_worker_dockerfile


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Build the images and bring the stack up healthy; always tear it down by project name."""
    engine_ready()
    workdir = tmp_path_factory.mktemp("stack")
    (workdir / "Dockerfile.worker").write_text(standin_worker_dockerfile())
    stack = Stack(project=f"imgjobs-test-{uuid.uuid4().hex[:8]}", workdir=workdir)
    try:
        started = time.monotonic()
        stack.compose("build", timeout=1200)
        built = time.monotonic()
        up = stack.compose("up", "--detach", "--wait", "--wait-timeout", "180", check=False, timeout=300)
        if up.returncode != 0:
            pytest.fail(f"compose up --wait failed:\n{up.stderr[-3000:]}\n{stack.logs()}")
        healthy = time.monotonic() - built
        report(f"stack {stack.project}: built in {built - started:.0f} s, healthy {healthy:.0f} s later")
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False, timeout=300)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the container tests measured."""
    if NOTES:
        terminalreporter.section("containers")
        for line in NOTES:
            terminalreporter.write_line(line)
