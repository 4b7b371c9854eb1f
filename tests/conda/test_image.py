"""The worker image built through Dockerfile.worker's conda stage (make test-conda builds it)."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import download, finished, make_image, submit
from tests.services import RedisServer

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("CONDA_WORKER_IMAGE", "")
#: What the strip step removes and must stay gone.
STRIPPED = ["conda-meta", "include", "bin/pip", "bin/python3-config", "bin/conda-unpack",
            "bin/conda_unpack_progress.py", "bin/activate", "bin/activate.fish", "bin/deactivate",
            "lib/python3.12/test",
            "lib/python3.12/tkinter", "lib/python3.12/site-packages/pip"]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a docker command and fail with its output if it fails."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def in_image(script: str) -> str:
    """Run a shell script in the image as its own user and return what it printed."""
    return docker("run", "--rm", "--entrypoint", "sh", IMAGE, "-c", script).stdout.strip()


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    if not IMAGE:
        pytest.skip("CONDA_WORKER_IMAGE is unset: run `make test-conda`, which builds it")


def test_runs_as_the_app_user_with_the_packed_env() -> None:
    out = in_image("id -u; python -c 'import sys, numpy, PIL, rq, worker.tasks; "
                   "print(sys.prefix, numpy.__version__, PIL.__version__, rq.__version__)'")
    uid, env = out.splitlines()
    assert uid == "10001"
    assert env.split()[0] == "/venv"


def test_the_env_is_stripped_and_readable_by_the_app() -> None:
    present = in_image(" ".join(f"[ -e /venv/{p} ] && echo {p};" for p in STRIPPED) + " true")
    assert present == ""
    assert in_image("find /venv -type l ! -exec test -e {} \\; -print") == "", "dangling links"
    assert in_image("find /venv ! -readable -print | head -5") == "", "files the app user cannot read"
    assert in_image("find /venv -name '*.pyc' -o -name __pycache__ | head -5") == ""
    assert in_image("ls -d /venv/lib/tk* /venv/lib/tcl* /venv/lib/libtk* /venv/lib/libtcl* 2>/dev/null; true") == ""


def test_no_build_prefix_is_left_in_text_files() -> None:
    # conda-unpack rewrote every prefix (sysconfig data, config scripts) to /venv.
    found = in_image("grep -rlI -e /opt/envs -e /.pyenv/ /venv | head -5; true")
    assert found == ""
    # conda-pack points shebangs at the PATH's python, which is the env's.
    assert in_image("head -1 /venv/bin/rq; command -v python; rq --help >/dev/null && echo runs").splitlines() == [
        "#!/usr/bin/env python", "/venv/bin/python", "runs"]


@pytest.fixture
def container(redis_server: RedisServer, data_dir: Path) -> Iterator[str]:
    """Run the image as a worker on the host's network, sharing the test service's data directory.

    It runs as the user of this test's web app, as compose runs web and worker as one user,
    so it can read the uploads the web writes (mode 0600).
    """
    name = f"imgjobs-conda-test-{uuid.uuid4().hex[:8]}"
    docker("run", "--detach", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
           "--user", f"{os.getuid()}:{os.getgid()}", "--env", f"REDIS_URL={redis_server.url}",
           "--env", "DATA_DIR=/data", "--env", "JOB_TIMEOUT=30", "--volume", f"{data_dir}:/data", IMAGE)
    yield name
    docker("rm", "--force", name, check=False)


def test_a_real_job_runs_through_the_image(container: str, client: FlaskClient) -> None:
    response = submit(client, make_image(size=(96, 64)), [{"op": "resize", "width": 48}, {"op": "stats"}])
    assert response.status_code == 202, response.get_json()
    done = finished(client, response.get_json()["id"], wait=30)
    logs = docker("logs", container, check=False)
    assert done["status"] == "finished", (done, logs.stdout[-2000:], logs.stderr[-2000:])
    assert done["result"]["width"] == 48
    image = Image.open(io.BytesIO(download(client, done["links"]["result"]).data))
    assert image.size == (48, 32)
