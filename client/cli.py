"""`imgjobs`: submit images to an imgjobs service and fetch the results, or batch a folder here."""

from __future__ import annotations

import json
import sys
from email.message import Message
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from client import files
from client.api import Api, ApiProblem
from client.submit import Submission, plan, run_all

ENDED = ("finished", "failed", "canceled")
LONG_POLL = 30.0


class Group(click.Group):
    """Commands whose API errors are shown as the API's message, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn an ApiProblem into a one-line error and exit status 1."""
        try:
            return super().invoke(ctx)
        except ApiProblem as exc:
            raise click.ClickException(exc.message) from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(cls=Group)
@click.option("--url", envvar="IMGJOBS_URL", default="http://localhost:5000", show_default=True,
              help="The service (env IMGJOBS_URL).")
@click.option("--key", envvar="IMGJOBS_KEY", help="API key, sent as a bearer token (env IMGJOBS_KEY).")
@click.pass_context
def main(ctx: click.Context, url: str, key: str | None) -> None:
    """Submit images to an imgjobs service and fetch the results, or batch a folder here."""
    ctx.obj = Api(url, key)


def emit(data: Any) -> None:
    """Print `data` as JSON."""
    click.echo(json.dumps(data, indent=1))


def describe(job: dict[str, Any]) -> str:
    """Describe a job in one line."""
    name = job.get("input", {}).get("filename", "")
    line = f"{job['id']}  {job['status']:<9} {job.get('progress', 0.0):>4.0%}  {name}"
    if job.get("error"):
        line += f"  {job['error'].get('message', '')}"
    return line


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--ops", help='Steps as JSON (\'[{"op": "resize", "width": 512}]\') or @file.json.')
@click.option("--preset", help="A named preset instead of --ops (see `imgjobs ops`).")
@click.option("--format", "fmt", help="Output format: png, jpeg or webp (default: the input's, else png).")
@click.option("--quality", type=click.IntRange(1, 100), help="Encoder quality for jpeg and webp.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where results are saved, named after the uploads.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Files in flight at once.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the jobs and download the results.")
@json_option
@click.pass_obj
def submit(api: Api, paths: tuple[str, ...], ops: str | None, preset: str | None, fmt: str | None,
           quality: int | None, out: Path, concurrency: int, wait: bool, as_json: bool) -> None:
    """Upload files, folders (recursively) and globs; watch the jobs; save the results under --out."""
    if ops and preset:
        raise click.UsageError("give either --ops or --preset, not both")
    fields = {"ops": files.read_ops(ops)} if ops else {"preset": preset} if preset else {}
    fields.update({k: str(v) for k, v in (("format", fmt), ("quality", quality)) if v})
    try:
        inputs = files.collect(paths)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    submissions = plan(inputs, out)
    run_all(api, submissions, fields, concurrency, wait, Console(stderr=True))
    if as_json:
        emit([s.as_dict() for s in submissions])
    else:
        summarise(submissions, api.retried)
    sys.exit(0 if all(s.ok for s in submissions) else 1)


def summarise(submissions: list[Submission], retried: int) -> None:
    """Print the failures and the totals."""
    for s in submissions:
        if not s.ok:
            click.echo(f"failed    {s.name}: {s.reason}")
    counts: dict[str, int] = {}
    for s in submissions:
        counts[s.status] = counts.get(s.status, 0) + 1
    totals = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    click.echo((totals or "no image files") + (f" ({retried} answers retried after 429/503)" if retried else ""))


@main.command()
@click.argument("job_id")
@json_option
@click.pass_obj
def status(api: Api, job_id: str, as_json: bool) -> None:
    """Show a job's status and progress."""
    job = api.job(job_id)
    emit(job) if as_json else click.echo(describe(job))


@main.command(name="wait")
@click.argument("job_id")
@json_option
@click.pass_obj
def wait_for(api: Api, job_id: str, as_json: bool) -> None:
    """Wait for a job to end; exit status 0 if it finished, else 1."""
    job = api.job(job_id)
    while job["status"] not in ENDED:
        job = api.job(job_id, wait=LONG_POLL)
    emit(job) if as_json else click.echo(describe(job))
    sys.exit(0 if job["status"] == "finished" else 1)


@main.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to save it (default: named after the upload, here).")
@json_option
@click.pass_obj
def get(api: Api, job_id: str, output: Path | None, as_json: bool) -> None:
    """Download a finished job's result."""
    with api.result(job_id) as response:
        target = output or Path(_download_name(response.headers.get("Content-Disposition", ""), job_id))
        size = files.save(response.iter_content(1 << 16), target)
    emit({"id": job_id, "output": str(target), "bytes": size}) if as_json else click.echo(f"{target} ({size} bytes)")


def _download_name(disposition: str, job_id: str) -> str:
    """Return the file name the server suggests, as a bare name in this folder."""
    message = Message()
    message["content-disposition"] = disposition
    name = Path(message.get_filename() or "").name
    return name if name not in ("", ".", "..") else job_id


@main.command()
@click.argument("job_id")
@json_option
@click.pass_obj
def cancel(api: Api, job_id: str, as_json: bool) -> None:
    """Cancel a queued job, stop a running one, or delete an ended one."""
    job = api.cancel(job_id)
    if as_json:
        emit(job or {"id": job_id, "deleted": True})
    else:
        click.echo(describe(job) if job else f"{job_id}  deleted")


@main.command(name="ls")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 100), default=20, show_default=True)
@json_option
@click.pass_obj
def list_jobs(api: Api, page: int, per_page: int, as_json: bool) -> None:
    """List recent jobs, newest first."""
    listing = api.jobs(page, per_page)
    if as_json:
        emit(listing)
        return
    for job in listing["jobs"]:
        click.echo(describe(job))
    click.echo(f"page {listing['page']}, {listing['total']} jobs in all")


@main.command()
@json_option
@click.pass_obj
def ops(api: Api, as_json: bool) -> None:
    """List the service's operations, their parameters and its presets."""
    catalog = api.ops()
    if as_json:
        emit(catalog)
        return
    table = Table("op", "family", "parameters", "description")
    for op in catalog["ops"]:
        params = ", ".join(_param(p) for p in op["params"])
        table.add_row(op["name"], op["family"] + (" (analysis)" if op["analysis"] else ""), params, op["description"])
    presets = Table("preset", "steps", "description")
    for preset in catalog.get("presets", []):
        presets.add_row(preset["name"], json.dumps(preset["ops"]), preset["description"])
    console = Console()
    console.print(table)
    console.print(presets)


def _param(param: dict[str, Any]) -> str:
    """Describe a parameter briefly: name=default, or name (required)."""
    if param.get("required"):
        return f"{param['name']} (required)"
    return f"{param['name']}={json.dumps(param.get('default'))}"


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.pass_context
def batch(ctx: click.Context) -> None:
    """Run steps over a folder tree here, with no server (the worker's pipeline); see `imgjobs batch --help`."""
    try:
        from worker.batch import command  # lazily: the client itself needs no numpy
    except ImportError as exc:
        needs = f"imgjobs batch needs the worker's packages ({exc}): pip install '.[batch]'"
        raise click.ClickException(needs) from None
    command.main(ctx.args, prog_name="imgjobs batch")
