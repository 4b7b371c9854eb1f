"""`docker compose run --rm worker batch` over bind-mounted host folders: no Redis, files owned by --user."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.docker.stack import Stack

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

UID = 12345  # not the image's own user: the files must get the one asked for with --user


def png(size: tuple[int, int]) -> bytes:
    """Return a gradient PNG of `size`."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def test_batch_a_host_folder_with_the_worker_image(stack: Stack, tmp_path: Path) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    (photos / "trip").mkdir(parents=True)
    (photos / "a.png").write_bytes(png((1024, 768)))
    (photos / "trip" / "b.png").write_bytes(png((600, 800)))
    (photos / "trip" / "broken.png").write_bytes(png((64, 64))[:100])
    out.mkdir()
    os.chown(out, UID, UID)

    def batch(*args: str) -> str:
        done = stack.compose(
            "run", "--rm", "--no-deps", "--user", f"{UID}:{UID}", "-v", f"{photos}:/in:ro", "-v", f"{out}:/out",
            "worker", "batch", "/in", "/out", "--preset", "thumbnail-512", "--report", "/out/report.json", *args,
            check=False, timeout=300,
        )
        assert done.returncode == 1, done.stdout + done.stderr  # the broken file fails the run
        return done.stdout

    first = batch("--jobs", "2")
    assert "2 done, 0 skipped, 1 failed" in first
    assert "failed  trip/broken.png: the image could not be decoded" in first
    for name, size in (("a.png", (512, 384)), ("trip/b.png", (384, 512))):
        with Image.open(out / name) as image:
            assert image.size == size
        assert (out / name).stat().st_uid == UID and (out / name).stat().st_gid == UID
    assert json.loads((out / "report.json").read_text())["done"] == 2

    again = batch()  # resumable: the outputs are newer than their inputs
    assert "0 done, 2 skipped, 1 failed" in again
