"""`imgjobs submit`: each file uploaded, watched and downloaded in its own thread, with live bars."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from client import files
from client.api import Api, ApiProblem
from imgjobs.jobs import OUTPUT_SUFFIXES

ENDED = ("finished", "failed", "canceled")
POLL = 1.0  # seconds each long-poll may wait: how often a running job's bar moves


@dataclass
class Submission:
    """One file to submit, and what became of it."""

    path: Path
    name: str
    stem: Path  # where the result goes, less its suffix (which the result's format gives)
    status: str = "pending"  # then submitted (--no-wait), finished, failed or canceled
    job_id: str | None = None
    output: Path | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Tell whether this file went as asked."""
        return self.status in ("submitted", "finished")

    def fail(self, reason: str, status: str = "failed") -> None:
        """Record that this file did not make it, and why."""
        self.status, self.reason = status, reason

    def as_dict(self) -> dict[str, Any]:
        """Describe the outcome for --json."""
        output = str(self.output) if self.output else None
        return {"file": self.name, "id": self.job_id, "status": self.status, "output": output, "error": self.reason}


def plan(inputs: list[tuple[Path, PurePath]], out: Path) -> list[Submission]:
    """Return a submission per input; one whose result name another already has fails at once."""
    taken: dict[PurePath, str] = {}
    submissions = []
    for path, name in inputs:
        stem = name.with_suffix("")
        submission = Submission(path, name.as_posix(), out / stem)
        if stem in taken:
            submission.fail(f"its result would overwrite the one of {taken[stem]}")
        taken.setdefault(stem, submission.name)
        submissions.append(submission)
    return submissions


class Display:
    """Live bars on a terminal (one for all files, one per file in flight), else a plain line per event."""

    def __init__(self, console: Console, total: int) -> None:
        self.progress: Progress | None = None
        if console.is_terminal:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[state]}"), console=console)
            self.overall = self.progress.add_task("all files", total=total, state="")

    def __enter__(self) -> Display:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def start(self, name: str) -> TaskID | None:
        """Show a bar for a file about to upload."""
        return self.progress.add_task(name, total=None, state="uploading") if self.progress else None

    def uploaded(self, bar: TaskID | None, sent: int, total: int) -> None:
        """Move the file's bar along its upload."""
        if self.progress and bar is not None:
            self.progress.update(bar, completed=sent, total=total)

    def running(self, bar: TaskID | None, name: str, job: dict[str, Any]) -> None:
        """Show a job's state and progress."""
        if self.progress and bar is not None:
            self.progress.update(bar, completed=job.get("progress", 0.0), total=1.0, state=job["status"])
        elif job["status"] == "queued":
            click.echo(f"submitted {name} as {job['id']}", err=True)

    def end(self, bar: TaskID | None, submission: Submission) -> None:
        """Drop the file's bar and say how it went."""
        line = f"{submission.status:<9} {submission.name}"
        line += f": {submission.reason}" if submission.reason else f" -> {submission.output or submission.job_id}"
        if self.progress and bar is not None:
            self.progress.remove_task(bar)
            self.progress.advance(self.overall)
            if not submission.ok:
                self.progress.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)


def run_all(api: Api, submissions: list[Submission], fields: dict[str, str], concurrency: int, wait: bool,
            console: Console) -> None:
    """Submit every pending file, `concurrency` at a time; with `wait`, follow each job and save its result."""
    todo = [s for s in submissions if s.status == "pending"]
    with Display(console, len(todo)) as display, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda s: _one(api, s, fields, wait, display), todo))


def _one(api: Api, submission: Submission, fields: dict[str, str], wait: bool, display: Display) -> None:
    """Upload one file, then follow its job and download its result."""
    bar = display.start(submission.name)
    try:
        job = api.submit(submission.path, fields, lambda sent, total: display.uploaded(bar, sent, total))
        submission.job_id = job["id"]
        display.running(bar, submission.name, job)
        if not wait:
            submission.status = "submitted"
            return
        while job["status"] not in ENDED:
            job = api.job(job["id"], wait=POLL)
            display.running(bar, submission.name, job)
        if job["status"] == "finished":
            _download(api, submission, job)
        else:
            submission.fail(job.get("error", {}).get("message", f"the job {job['status']}"), job["status"])
    except ApiProblem as exc:
        submission.fail(exc.message)
    except OSError as exc:
        submission.fail(f"cannot save the result: {exc}")
    finally:
        display.end(bar, submission)


def _download(api: Api, submission: Submission, job: dict[str, Any]) -> None:
    """Save a finished job's image beside the others, and its analysis as JSON beside it."""
    result = job["result"]
    suffix = OUTPUT_SUFFIXES.get(result.get("format"))
    if suffix is None:
        submission.fail(f"the service sent a result in an unknown format ({result.get('format')!r})")
        return
    output = Path(f"{submission.stem}{suffix}")
    with api.result(job["id"]) as response:
        files.save(response.iter_content(1 << 16), output)
    if result.get("analysis"):
        sidecar = json.dumps({"source": submission.name, "id": job["id"], "result": result}, indent=1).encode()
        files.save([sidecar], output.with_name(output.name + ".json"))
    submission.output, submission.status = output, "finished"
