"""`python -m worker batch` / `imgjobs batch`: a folder tree through the worker's pipeline, no server."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import ROOT, make_image
from worker import pipeline

RESIZE = '[{"op": "resize", "width": 32}]'


def run_batch(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker batch` as the image's entry point does; return its outcome."""
    command = [sys.executable, "-m", "worker", "batch", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A tree: two good images at the top, one in a sub-folder, a broken one, a text file and a hidden file."""
    root = tmp_path / "photos"
    (root / "trip" / "day1").mkdir(parents=True)
    (root / "a.png").write_bytes(make_image("RGB", (64, 48)))
    (root / "b.jpg").write_bytes(make_image("RGB", (80, 60), "JPEG"))
    (root / "trip" / "day1" / "c.webp").write_bytes(make_image("RGBA", (40, 40), "WEBP"))
    (root / "trip" / "broken.jpg").write_bytes(make_image("RGB", (64, 48), "JPEG")[:200])
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(make_image())
    return root


def test_a_tree_is_mirrored_with_each_file_through_the_pipeline(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    done = run_batch(photos, out, "--ops", RESIZE, "--jobs", "2", "--report", report)
    assert done.returncode == 1, done.stderr  # the broken file fails the run
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "b.jpg", "trip/day1/c.webp"]
    for name, fmt in (("a.png", "PNG"), ("b.jpg", "JPEG"), ("trip/day1/c.webp", "WEBP")):
        with Image.open(out / name) as image:
            assert image.format == fmt and image.width == 32
    # The same bytes as a job: one pipeline.
    expected = tmp_path / "expected.png"
    pipeline.process(photos / "a.png", expected, {"ops": json.loads(RESIZE), "format": "png", "quality": None})
    assert (out / "a.png").read_bytes() == expected.read_bytes()
    assert "failed  trip/broken.jpg: the image could not be decoded" in done.stdout
    assert "3 done, 0 skipped, 1 failed" in done.stdout
    data = json.loads(report.read_text())
    assert (data["done"], data["skipped"], data["failed"]) == (3, 0, 1)
    by_name = {f["source"]: f for f in data["files"]}
    assert by_name["trip/broken.jpg"]["status"] == "failed"
    assert "could not be decoded" in by_name["trip/broken.jpg"]["reason"]
    assert not list(out.rglob("*.part")), "a failed file leaves no partial output"


def test_resume_skips_fresh_outputs_and_force_redoes_them(photos: Path, tmp_path: Path) -> None:
    (photos / "trip" / "broken.jpg").unlink()
    out = tmp_path / "out"
    first = run_batch(photos, out, "--preset", "thumbnail-512", "--format", "png")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 done, 0 skipped, 0 failed" in first.stdout
    stamp = (out / "a.png").stat().st_mtime_ns

    again = run_batch(photos, out, "--preset", "thumbnail-512", "--format", "png")
    assert again.returncode == 0 and "0 done, 3 skipped, 0 failed" in again.stdout
    assert (out / "a.png").stat().st_mtime_ns == stamp

    future = time.time() + 5  # the input changed after its output was written
    os.utime(photos / "b.jpg", (future, future))
    changed = run_batch(photos, out, "--preset", "thumbnail-512", "--format", "png")
    assert "1 done, 2 skipped, 0 failed" in changed.stdout

    forced = run_batch(photos, out, "--preset", "thumbnail-512", "--format", "png", "--force")
    assert "3 done, 0 skipped, 0 failed" in forced.stdout
    assert (out / "a.png").stat().st_mtime_ns != stamp


def test_analysis_writes_a_json_sidecar_beside_each_output(photos: Path, tmp_path: Path) -> None:
    (photos / "trip" / "broken.jpg").unlink()
    out = tmp_path / "out"
    done = run_batch(photos, out, "--preset", "analyse", "--jobs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    side = json.loads((out / "trip" / "day1" / "c.webp.json").read_text())
    assert side["source"] == "trip/day1/c.webp"
    assert [step["op"] for step in side["result"]["analysis"]] == ["palette", "hash", "stats"]
    assert side["result"]["width"] == 40
    # A missing sidecar is work left to do, even if the image is there.
    (out / "a.png.json").unlink()
    again = run_batch(photos, out, "--preset", "analyse")
    assert "1 done, 2 skipped, 0 failed" in again.stdout
    assert (out / "a.png.json").is_file()


def test_the_pixel_limit_applies_as_for_jobs(photos: Path, tmp_path: Path) -> None:
    (photos / "big.png").write_bytes(make_image("RGB", (200, 200)))  # 4x the limit: Pillow refuses it on open
    (photos / "wide.png").write_bytes(make_image("RGB", (150, 100)))  # 1.5x: Pillow only warns
    done = run_batch(photos, tmp_path / "out", "--ops", RESIZE, MAX_PIXELS="10000")
    assert done.returncode == 1
    assert "failed  big.png: the image has more than the limit of 10,000 pixels" in done.stdout, done.stdout
    assert "failed  wide.png: the image has more than the limit of 10,000 pixels" in done.stdout
    assert (tmp_path / "out" / "a.png").is_file()


def test_a_step_over_the_pixel_budget_fails_its_file(photos: Path, tmp_path: Path) -> None:
    pad = '[{"op": "pad", "width": 200, "height": 200}]'
    done = run_batch(photos, tmp_path / "out", "--ops", pad, MAX_PIXELS="10000")
    assert done.returncode == 1
    assert "failed  a.png: step 1 (pad) would make a 200x200 image; the limit is 10,000 pixels" in done.stdout
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ops", '[{"op": "resize", "width": 0}]'], "width"),
        (["--ops", "[{"], "not valid JSON"),
        (["--ops", '[{"op": "nope"}]'], "unknown op 'nope'"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--ops", RESIZE, "--preset", "analyse"], "either --ops or --preset"),
        (["--format", "gif"], "format must be one of"),
        (["--quality", "0", "--format", "jpeg"], "quality must be an integer from 1 to 100"),
    ],
)
def test_bad_steps_or_options_stop_before_any_file(photos: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    done = run_batch(photos, out, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_too_many_steps_are_refused(photos: Path, tmp_path: Path) -> None:
    done = run_batch(photos, tmp_path / "out", "--ops", json.dumps([{"op": "invert"}] * 3), MAX_STEPS="2")
    assert done.returncode == 2 and "at most 2 are allowed" in done.stderr


def test_two_inputs_with_one_output_name_fail_the_second(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "x.png").write_bytes(make_image())
    (photos / "x.jpg").write_bytes(make_image(fmt="JPEG"))
    done = run_batch(photos, tmp_path / "out", "--format", "webp")
    assert done.returncode == 1
    assert "failed  x.png: its output x.webp is already written from x.jpg" in done.stdout


def test_plain_lines_when_not_a_terminal(photos: Path, tmp_path: Path) -> None:
    done = run_batch(photos, tmp_path / "out", "--ops", RESIZE)
    lines = done.stderr.splitlines()
    assert f"done    a.png -> {tmp_path / 'out' / 'a.png'}" in lines
    assert any(line.startswith("failed  trip/broken.jpg: ") for line in lines)
    assert "\x1b[" not in done.stderr and "━" not in done.stderr


def read_terminal(command: list[str], **env: str) -> tuple[int, str]:
    """Run `command` with a pseudo-terminal as its stdout and stderr; return its status and all it wrote."""
    main, side = pty.openpty()
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=side, stderr=side,
                               env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **env})
    os.close(side)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_a_progress_bar_with_count_rate_and_eta_on_a_terminal(photos: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "worker", "batch", str(photos), str(tmp_path / "out"), "--ops", RESIZE]
    status, text = read_terminal(command)
    assert status == 1
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "━" in plain  # the bar
    assert re.search(r"4/4", plain) and "files/s" in plain and "ETA" in plain, plain
    assert "failed  trip/broken.jpg: the image could not be decoded" in plain
    assert "3 done, 0 skipped, 1 failed" in plain


def test_convert_reports_an_unwritable_output_as_a_failure(tmp_path: Path) -> None:
    from worker.batch import FileJob, convert

    source = tmp_path / "a.png"
    source.write_bytes(make_image())
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")
    job: dict[str, Any] = {"ops": [], "format": "png", "quality": None}
    outcome = convert(FileJob(source, blocker / "a.png", "a.png", job))
    assert outcome.status == "failed" and outcome.reason and "exists" in outcome.reason.lower()


def test_the_installed_imgjobs_command_runs_batch_too(photos: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "imgjobs"  # installed by `make dev` (pip install --editable .)
    assert script.is_file(), "make dev installs the imgjobs command into the venv"
    (photos / "trip" / "broken.jpg").unlink()
    done = subprocess.run([str(script), "batch", str(photos), str(tmp_path / "out"), "--preset", "poster-8"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 done, 0 skipped, 0 failed" in done.stdout
    helped = subprocess.run([str(script), "batch", "--help"], capture_output=True, text=True, timeout=60)
    assert "Usage: imgjobs batch [OPTIONS] SOURCE TARGET" in helped.stdout and "--jobs" in helped.stdout


def test_an_output_folder_inside_the_input_is_not_read_and_nothing_overwrites_its_input(photos: Path) -> None:
    (photos / "trip" / "broken.jpg").unlink()
    inside = photos / "converted"
    first = run_batch(photos, inside, "--format", "png")
    assert first.returncode == 0 and "3 done" in first.stdout, first.stdout + first.stderr
    again = run_batch(photos, inside, "--format", "png")
    assert "0 done, 3 skipped, 0 failed" in again.stdout  # converted/ itself is not taken as input
    before = (photos / "a.png").read_bytes()
    in_place = run_batch(photos, photos, "--format", "png")
    assert in_place.returncode == 1 and "failed  a.png: it would overwrite itself" in in_place.stdout
    assert (photos / "a.png").read_bytes() == before
