"""The layout's promises: the web never loads numpy or worker code; the worker never loads Flask."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def modules_after(statement: str) -> set[str]:
    """Return the top-level modules loaded by running `statement` in a fresh interpreter."""
    code = f"{statement}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_web_app_loads_neither_numpy_nor_worker_code():
    loaded = modules_after("from web import create_app; create_app({'DATA_DIR': '/tmp/imgjobs-arch'})")
    assert "flask" in loaded
    assert not {"numpy", "worker"} & loaded


def test_worker_loads_no_flask():
    loaded = modules_after("import worker.service")
    assert "numpy" in loaded and "rq" in loaded
    assert not {"flask", "web", "werkzeug"} & loaded


def test_jobs_are_enqueued_by_a_name_that_resolves_to_the_worker_task():
    from rq.utils import import_attribute

    from imgjobs.jobs import TASK
    from worker.tasks import process

    assert import_attribute(TASK) is process


def test_the_client_talks_http_only():
    loaded = modules_after("import client.cli, client.submit, client.files, client.api")
    assert {"click", "requests", "rich"} <= loaded
    assert not {"web", "worker", "flask", "numpy", "PIL", "redis", "rq"} & loaded
