"""Where files live under DATA_DIR: uploads and results named by job id, nothing else."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def new_job_id() -> str:
    """Return a fresh, unguessable job id."""
    return uuid.uuid4().hex


def is_job_id(text: str) -> bool:
    """Tell whether `text` has the shape of a job id (so it is safe in a path)."""
    return bool(_JOB_ID.match(text))


class Storage:
    """The data directory: `uploads/<id>`, `results/<id>.<format>` and `tmp/` for partial files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uploads = self.root / "uploads"
        self.results = self.root / "results"
        self.tmp = self.root / "tmp"

    def ensure(self) -> None:
        """Create the directories if they are missing."""
        for path in (self.uploads, self.results, self.tmp):
            path.mkdir(parents=True, exist_ok=True)

    def upload(self, job_id: str) -> Path:
        """Return the path of a job's uploaded file."""
        return self.uploads / _checked(job_id)

    def result(self, job_id: str, fmt: str) -> Path:
        """Return the path of a job's result in format `fmt`."""
        return self.results / f"{_checked(job_id)}.{fmt}"

    def remove(self, job_id: str) -> None:
        """Delete every file of a job; missing files are fine."""
        self.upload(job_id).unlink(missing_ok=True)
        for path in self.results.glob(f"{_checked(job_id)}.*"):
            path.unlink(missing_ok=True)


def _checked(job_id: str) -> str:
    """Return `job_id`, refusing anything that is not a job id."""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id
