"""Why a job failed, in words a user can act on, and whether a retry could help."""

from __future__ import annotations

from typing import Any

from rq.exceptions import AbandonedJobError
from rq.timeouts import JobTimeoutException

from imgjobs.catalog import TooManyPixels
from worker.imagefile import ImageError


class JobCanceled(Exception):
    """The web asked for the running job to stop."""


def explain(exc: BaseException, timeout: int | None = None) -> tuple[dict[str, str], bool]:
    """Return the API's error object for `exc` and whether retrying may succeed."""
    if isinstance(exc, AbandonedJobError):  # RQ's own registry cleanup found it
        return lost(), True
    if isinstance(exc, JobCanceled):
        return _error("canceled", "The job was canceled while it was running."), False
    if isinstance(exc, ImageError):
        return _error("undecodable_image", f"The image could not be processed: {_strip(exc)}."), False
    if isinstance(exc, TooManyPixels):
        return _error("too_many_pixels", f"{_strip(exc)}."), False
    if isinstance(exc, JobTimeoutException):
        limit = f" of {timeout} s" if timeout else ""
        return _error("timeout", f"The job ran past its time limit{limit}; try a smaller image or fewer steps."), False
    if isinstance(exc, MemoryError):
        return _error("out_of_memory", "The job needed more memory than a worker may use (WORKER_MEMORY_MB); "
                      "try a smaller image or fewer steps."), False
    if isinstance(exc, ValueError):
        return _error("invalid_step", f"A step could not run: {exc}."), False
    if isinstance(exc, OSError):
        return _error("storage_error", f"Reading or writing the job's files failed: {exc}."), True
    return _error("job_failed", f"The job failed: {type(exc).__name__}: {exc}."), True


def crashed(why: str) -> dict[str, str]:
    """Describe a job whose worker process died under it (killed, out of memory, crashed)."""
    return _error("worker_crashed", f"The process running this job died ({why}); it may have run out of memory.")


def lost() -> dict[str, str]:
    """Describe a job whose whole worker (supervisor and child: a host or container) stopped answering."""
    return _error("worker_lost", "The worker running this job stopped answering (its host or container died).")


def _error(code: str, message: str) -> dict[str, Any]:
    """Build an error object."""
    return {"code": code, "message": message}


def _strip(exc: BaseException) -> str:
    """Return the exception's message without a trailing full stop."""
    return str(exc).rstrip(".")
