"""Batch: one job spec over a folder tree, with no queue and no server, through the worker's pipeline.

`python -m worker batch IN OUT` (the worker image's entry point) and `imgjobs batch IN OUT` run it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from imgjobs import config
from imgjobs.catalog import CATALOG, Budget, StepError, validate_steps
from imgjobs.jobs import IMAGE_SUFFIXES, OUTPUT_SUFFIXES, output_format, output_quality
from imgjobs.presets import steps_for
from worker import imagefile, pipeline
from worker.service import limit_memory


@dataclass(frozen=True)
class FileJob:
    """One input file, where its output goes, and the spec it runs with."""

    source: Path
    output: Path
    name: str  # the input's path relative to the input folder, for messages
    spec: dict[str, Any]


@dataclass
class Outcome:
    """What happened to one input file."""

    source: str
    output: str
    status: str  # done, skipped or failed
    reason: str | None = None


def plan(source: Path, target: Path, job_spec: dict[str, Any]) -> tuple[list[FileJob], list[Outcome]]:
    """Return a job per image under `source`, mirrored under `target`, and failures for clashing outputs.

    Without a format in `job_spec`, each file keeps the format its name says (else png).
    """
    jobs: dict[Path, FileJob] = {}
    clashes = []
    for path in sorted(_images(source, skip=target)):
        name = path.relative_to(source).as_posix()
        fmt = output_format(job_spec["format"], IMAGE_SUFFIXES[path.suffix.lower()])
        output = target / path.relative_to(source).with_suffix(OUTPUT_SUFFIXES[fmt])
        clash = "it would overwrite itself" if output.resolve() == path.resolve() else (
            f"its output {output.relative_to(target)} is already written from {jobs[output].name}"
            if output in jobs else None)
        if clash:
            clashes.append(Outcome(name, str(output), "failed", clash))
            continue
        spec = {**job_spec, "format": fmt, "quality": output_quality(job_spec["quality"], fmt)}
        jobs[output] = FileJob(path, output, name, spec)
    return list(jobs.values()), clashes


def _images(folder: Path, skip: Path) -> Iterator[Path]:
    """Yield the image files under `folder`, at any depth, leaving out hidden ones and the folder `skip`."""
    skipped = skip.resolve()
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() != skipped]
        for file in files:
            if not file.startswith(".") and Path(file).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / file


def sidecar(output: Path) -> Path:
    """Return where the analysis of `output` is written."""
    return output.with_name(output.name + ".json")


def fresh(task: FileJob, analysis: bool) -> bool:
    """Tell whether the task's output (and sidecar) is already newer than its input."""
    try:
        newest = task.source.stat().st_mtime
        return all(path.stat().st_mtime >= newest for path in (task.output, *([sidecar(task.output)] * analysis)))
    except FileNotFoundError:
        return False


def convert(task: FileJob, budget: Budget | None = None) -> Outcome:
    """Run the job spec on one file within `budget`; a file that cannot be processed fails with the reason."""
    try:
        task.output.parent.mkdir(parents=True, exist_ok=True)
        result = pipeline.process(task.source, task.output, task.spec, budget=budget)
        if result["analysis"]:
            _write_json(sidecar(task.output), {"source": task.name, "result": result})
    except (imagefile.ImageError, OSError, ValueError) as exc:
        return Outcome(task.name, str(task.output), "failed", str(exc))
    except MemoryError:
        return Outcome(task.name, str(task.output), "failed", "it needs more memory than there is")
    return Outcome(task.name, str(task.output), "done")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to `path` atomically."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def limit(settings: dict[str, Any]) -> None:
    """Apply the worker's limits to this process: MAX_PIXELS for decoding, the worker child's memory cap."""
    Image.MAX_IMAGE_PIXELS = settings["MAX_PIXELS"]  # imagefile.load turns Pillow's warning into ImageError
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    limit_memory(config.memory_limit(settings))


def run(tasks: list[FileJob], jobs: int, settings: dict[str, Any], done: Callable[[Outcome], None]) -> list[Outcome]:
    """Convert every task over `jobs` processes, calling `done` as each one ends; return the outcomes."""
    budget = Budget(settings["MAX_PIXELS"], settings["MAX_DIMENSION"])
    if jobs == 1 or len(tasks) < 2:
        limit(settings)
        return [_report(convert(task, budget), done) for task in tasks]
    outcomes = []
    with ProcessPoolExecutor(min(jobs, len(tasks)), initializer=limit, initargs=(settings,)) as pool:
        futures: dict[Future[Outcome], FileJob] = {pool.submit(convert, task, budget): task for task in tasks}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                task = futures[future]
                outcome = Outcome(task.name, str(task.output), "failed", "the process converting it died")
            outcomes.append(_report(outcome, done))
    return outcomes


def _report(outcome: Outcome, done: Callable[[Outcome], None]) -> Outcome:
    """Pass `outcome` to `done` and return it."""
    done(outcome)
    return outcome


class RateColumn(ProgressColumn):
    """Files per second."""

    def render(self, task: Task) -> Text:
        """Show the task's speed in files a second."""
        return Text(f"{task.speed:.1f} files/s" if task.speed else "- files/s", style="progress.data.speed")


def job_spec_for(ops: str | None, preset: str | None, fmt: str | None, quality: int | None,
                 max_steps: int) -> dict[str, Any]:
    """Return the validated spec every file gets (format None: each file keeps its own)."""
    if ops and preset:
        raise click.UsageError("give either --ops or --preset, not both")
    try:
        raw = steps_for(preset) if preset else json.loads(_read_ops(ops)) if ops else []
        steps = validate_steps(raw, max_steps)
        fmt = output_format(fmt, "PNG") if fmt else None
        output_quality(quality, fmt or "jpeg")  # checks the range
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--ops") from None
    except (StepError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    return {"ops": steps, "format": fmt, "quality": quality}


def _read_ops(ops: str) -> str:
    """Return the ops text, read from a file when given as @path."""
    if not ops.startswith("@"):
        return ops
    try:
        return Path(ops[1:]).read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {ops[1:]}: {exc.strerror}", param_hint="--ops") from None


@click.command(name="batch")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ops", help='Steps as JSON (\'[{"op": "resize", "width": 512}]\') or @file.json.')
@click.option("--preset", help="A named preset instead of --ops (see `imgjobs ops`).")
@click.option("--format", "fmt", help="Output format: png, jpeg or webp (default: each input's own, else png).")
@click.option("--quality", type=int, help="Encoder quality 1-100 for jpeg and webp.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=os.cpu_count() or 1, show_default="the cores",
              help="Files converted at once, each in its own process.")
@click.option("--force", is_flag=True, help="Convert again even where the output is newer than the input.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write every file's outcome as JSON.")
def command(source: Path, target: Path, ops: str | None, preset: str | None, fmt: str | None,
            quality: int | None, jobs: int, force: bool, report: Path | None) -> None:
    """Run steps over every image under SOURCE, writing the results to the same tree under TARGET."""
    settings = config.from_env(redis=False)  # no Redis here, so no password file to need
    job_spec = job_spec_for(ops, preset, fmt, quality, settings["MAX_STEPS"])
    analysis = any(CATALOG[step["op"]].analysis for step in job_spec["ops"])
    tasks, outcomes = plan(source, target, job_spec)
    todo = []
    for task in tasks:
        if force or not fresh(task, analysis):
            todo.append(task)
        else:
            outcomes.append(Outcome(task.name, str(task.output), "skipped"))
    started = time.monotonic()
    console = Console(stderr=True)
    with _progress(console, len(todo)) as done:
        outcomes += run(todo, jobs, settings, done)
    failed = summarise(outcomes, time.monotonic() - started, report)
    sys.exit(1 if failed else 0)


@contextmanager
def _progress(console: Console, total: int) -> Iterator[Callable[[Outcome], None]]:
    """Yield what to call as each file ends: a live bar on a terminal, else a plain line per file."""
    if not console.is_terminal:
        yield lambda outcome: click.echo(_line(outcome), err=True)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("files", total=total)

        def done(outcome: Outcome) -> None:
            if outcome.status == "failed":
                progress.console.print(_line(outcome), markup=False, highlight=False)
            progress.advance(bar)

        yield done


def _line(outcome: Outcome) -> str:
    """Describe one file's outcome in a line."""
    if outcome.status == "failed":
        return f"failed  {outcome.source}: {outcome.reason}"
    return f"{outcome.status:<7} {outcome.source} -> {outcome.output}"


def summarise(outcomes: list[Outcome], seconds: float, report: Path | None) -> int:
    """Print the totals and the failures, write the report if asked; return how many failed."""
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    failures = sorted((o for o in outcomes if o.status == "failed"), key=lambda o: o.source)
    for outcome in failures:
        click.echo(_line(outcome))
    click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed in {seconds:.1f} s")
    if report:
        files = [asdict(o) for o in sorted(outcomes, key=lambda o: o.source)]
        report.write_text(json.dumps({**counts, "seconds": round(seconds, 3), "files": files}, indent=1) + "\n")
    return counts["failed"]
