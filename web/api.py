"""The JSON API, v1: create jobs, report on them, serve results, list the op catalogue."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from flask import Blueprint, Response, current_app, g, redirect, request, send_file, url_for
from flask.typing import ResponseReturnValue
from rq.job import Job
from werkzeug.utils import secure_filename

from imgjobs.catalog import Budget, describe, validate_steps
from imgjobs.jobs import ENDED, MEDIA_TYPES, cost, output_format, output_quality
from imgjobs.presets import describe as describe_presets
from imgjobs.presets import steps_for
from imgjobs.storage import new_job_id
from web import auth, clients, limits, share, store, uploads, usage
from web.errors import ApiError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

MAX_WAIT = 30.0
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000
MAX_OPS_BYTES = 64 * 1024
# Werkzeug applies its form-memory limit to its multipart buffer too, which holds up to two of its
# 64 KB reads of a file part: any lower and big uploads get a spurious 413.
MAX_FIELD_BYTES = 256 * 1024
RESULT_URL_SECONDS = 300  # how long a presigned result URL (RESULT_REDIRECT=1) stays valid


@bp.post("/jobs")
def create_job() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Validate an upload and its steps, store the file and queue the job; with ?wait=N, answer once it ends."""
    config = current_app.config
    wait = _float_arg("wait", 0.0, 0.0, MAX_WAIT)
    store.check_room()
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file", 'Send the image as a multipart form field named "file".')
    steps = validate_steps(_requested_steps(), config["MAX_STEPS"])
    info = uploads.inspect(uploads.on_disk(upload.stream), config["MAX_PIXELS"])
    sizes = Budget(config["MAX_PIXELS"], config["MAX_DIMENSION"]).sizes(steps, info.upright)
    try:
        fmt = output_format(request.form.get("format"), info.format)
        quality = output_quality(request.form.get("quality"), fmt)
    except ValueError as exc:
        raise ApiError(400, "invalid_output", str(exc)) from None
    job_id = new_job_id()
    limits.claim(job_id)
    input_info = {**info.as_dict(), "filename": _filename(upload.filename, config["MAX_FILENAME_BYTES"])}
    job_spec = {"ops": steps, "format": fmt, "quality": quality}
    uploads.keep(upload.stream, job_id)
    try:
        heavy = cost([info.upright, *sizes]) > config["HEAVY_PIXELS"]
        job = store.enqueue(job_id, job_spec, input_info, auth.owner(), heavy=heavy, also=usage.count_job)
    except Exception:
        store.storage().remove_upload(job_id)
        raise
    if wait:  # one request instead of two: the job as GET ?wait= would give it, 201 once it has ended
        try:
            job = store.wait(job, wait)
        except redis.RedisError as exc:  # the job is queued all the same: say so, lest the client send it twice
            log.warning("could not wait for job %s, answering it as queued: %s", job_id, exc)
    created = 201 if store.status(job) in ENDED else 202
    return view(job), created, {"Location": url_for("api.get_job", job_id=job_id)}


@bp.get("/jobs")
def list_jobs() -> dict[str, Any]:
    """List recent jobs, newest first, a page at a time."""
    page = _int_arg("page", 1, 1, MAX_PAGE)
    per_page = _int_arg("per_page", 20, 1, MAX_PER_PAGE)
    jobs, total = store.recent(page, per_page, auth.scope())
    links = {"self": url_for("api.list_jobs", page=page, per_page=per_page)}
    if page * per_page < total:
        links["next"] = url_for("api.list_jobs", page=page + 1, per_page=per_page)
    return {"jobs": [view(job) for job in jobs], "page": page, "per_page": per_page, "total": total, "links": links}


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict[str, Any]:
    """Report a job, long-polling up to ?wait=N seconds for it to end."""
    wait = _float_arg("wait", 0.0, 0.0, MAX_WAIT)
    return view(store.wait(store.fetch(job_id, auth.scope()), wait))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response | dict[str, Any]:
    """Cancel a queued job, stop a running one, or delete an ended one and its files."""
    job = store.fetch(job_id, auth.scope())
    if store.cancel(job):
        return Response(status=204)
    return view(job)


@bp.get("/jobs/<job_id>/result")
def get_result(job_id: str) -> ResponseReturnValue:
    """Serve a finished job's image (to its key, or to anyone with a signed link)."""
    job = store.fetch(job_id, auth.scope())
    state = store.status(job)
    if state != "finished":
        raise ApiError(409, "job_not_finished", f"The job is {state}; the result exists once it is finished.")
    result = job.return_value() or {}
    fmt = result.get("format", "")
    stem = secure_filename(str(job.meta.get("input", {}).get("filename", "")).rsplit(".", 1)[0]) or job.id
    download_name = f"{stem}.{fmt}"
    storage = store.storage()
    try:
        if current_app.config["RESULT_REDIRECT"]:
            url = storage.result_url(job.id, fmt, download_name, RESULT_URL_SECONDS)
            if url:
                return redirect(url, 302)
        stream = storage.open_result(job.id, fmt)
    except FileNotFoundError:
        message = "The result file is gone (expired or deleted); submit the job again."
        raise ApiError(404, "result_expired", message) from None
    except OSError as exc:
        raise ApiError(503, "storage_unavailable", f"The result cannot be read now: {exc}.") from None
    # a job's result never changes, so its id is a strong ETag whatever holds the bytes
    response = send_file(stream, mimetype=MEDIA_TYPES[fmt], download_name=download_name, max_age=3600, etag=job.id)
    if response.status_code == 200:
        response.content_length = result["bytes"]
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Only the caller's own cache may keep it; with API keys on, none at all.
    response.headers["Cache-Control"] = "no-store" if clients.current().startswith("key:") else "private, max-age=3600"
    # A share link is made to be embedded anywhere (an <img> on another site); everything else stays same-origin.
    policy = "cross-origin" if g.get("shared_link") else current_app.config["RESULT_RESOURCE_POLICY"]
    if policy:
        response.headers["Cross-Origin-Resource-Policy"] = policy
    return response


@bp.get("/ops")
def list_ops() -> dict[str, Any]:
    """Describe every op and its parameters."""
    config = current_app.config
    return {
        "ops": describe(),
        "presets": describe_presets(),
        "max_steps": config["MAX_STEPS"],
        "formats": list(MEDIA_TYPES),
        "limits": {"max_upload_mb": config["MAX_UPLOAD_MB"], "max_pixels": config["MAX_PIXELS"],
                   "max_dimension": config["MAX_DIMENSION"]},
    }


def view(job: Job) -> dict[str, Any]:
    """Describe a job as the API shows it."""
    state = store.status(job)
    job_spec = job.args[0] if job.args else {}
    out: dict[str, Any] = {
        "id": job.id,
        "status": state,
        "progress": 1.0 if state == "finished" else float(job.meta.get("progress", 0.0)),
        "ops": job_spec.get("ops", []),
        "format": job_spec.get("format"),
        "input": job.meta.get("input", {}),
        "created_at": store.timestamp(job.created_at),
        "started_at": store.timestamp(job.started_at),
        "ended_at": store.timestamp(job.ended_at),
        "links": {
            "self": url_for("api.get_job", job_id=job.id),
            "result": url_for("api.get_result", job_id=job.id),
        },
    }
    if state == "finished":
        out["result"] = job.return_value()
        if auth.keys_on():
            out["links"]["share"] = share.link(job.id)
    elif state == "failed":
        out["error"] = job.meta.get("error") or _failure(job)
    elif state == "canceled":
        out["error"] = {"code": "canceled", "message": "The job was canceled."}
    return out


def _failure(job: Job) -> dict[str, str]:
    """Describe a failure the worker did not explain, from the last line of its traceback."""
    result = job.latest_result()
    text = (result.exc_string if result else None) or ""
    last = text.strip().splitlines()[-1] if text.strip() else "the job failed"
    return {"code": "job_failed", "message": last}


def _requested_steps() -> Any:
    """Return the steps asked for: the named preset's, or the ops field's."""
    name = request.form.get("preset")
    if not name:
        return _parse_ops(_ops_field())
    if (_ops_field() or "").strip():
        raise ApiError(400, "invalid_preset", "Send either a preset or ops, not both.")
    try:
        return steps_for(name)
    except ValueError as exc:
        raise ApiError(400, "invalid_preset", f"{str(exc).capitalize()}.") from None


def _ops_field() -> str | None:
    """Return the ops field, whether sent as text (-F 'ops=[...]') or as a file (-F ops=@steps.json)."""
    if "ops" not in request.files:
        text = request.form.get("ops")
        raw = text.encode() if text is not None and len(text) > MAX_OPS_BYTES // 4 else b""
        if len(raw) > MAX_OPS_BYTES:
            raise _ops_too_big()
        return text
    raw = request.files["ops"].read(MAX_OPS_BYTES + 1)
    if len(raw) > MAX_OPS_BYTES:
        raise _ops_too_big()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_ops", "ops is not UTF-8 text; send a JSON list of steps.") from None


def _ops_too_big() -> ApiError:
    """Say the ops field is over its limit."""
    return ApiError(400, "invalid_ops", f"ops is over {MAX_OPS_BYTES // 1024} KB; a job has at most a few steps.")


def _parse_ops(raw: str | None) -> Any:
    """Read the ops form field: a JSON list, empty meaning re-encode only."""
    if raw is None or not raw.strip():
        return []
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_ops", f"ops is not valid JSON: {exc}.") from None
    except RecursionError:
        raise ApiError(400, "invalid_ops", "ops is nested too deeply; a step is a flat JSON object.") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ApiError(400, "invalid_ops", f"ops has a number that is too long: {exc}.") from None


def _filename(name: str | None, most: int) -> str:
    """Return the upload's name cut to `most` bytes of UTF-8: it is only shown back, never used as a path."""
    return (name or "").encode("utf-8", "replace")[:most].decode("utf-8", "ignore")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    """Read an integer query argument within bounds."""
    return int(_float_arg(name, default, low, high, whole=True))


def _float_arg(name: str, default: float, low: float, high: float, whole: bool = False) -> float:
    """Read a numeric query argument within bounds, or raise a 400."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "an integer" if whole else "a number"
        raise ApiError(400, "invalid_argument", f"{name} must be {kind} from {low:g} to {high:g}, got {raw!r}.")
    return value
