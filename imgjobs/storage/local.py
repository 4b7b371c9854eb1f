"""The shared-directory backend: `uploads/<id>`, `results/<id>.<format>` and `tmp/` under one root."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from imgjobs.storage import checked, is_job_id


class LocalStorage:
    """A directory every web and worker process mounts (one host, or a network file system)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uploads = self.root / "uploads"
        self.results = self.root / "results"
        self.tmp = self.root / "tmp"

    def ensure(self) -> None:
        """Create the directories if they are missing."""
        for path in (self.uploads, self.results, self.tmp):
            path.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        """Raise OSError unless the directory takes a write."""
        self.ensure()
        with tempfile.NamedTemporaryFile(dir=self.tmp, prefix="ready-"):
            pass

    def upload(self, job_id: str) -> Path:
        """Return the path of a job's uploaded file."""
        return self.uploads / checked(job_id)

    def result(self, job_id: str, fmt: str) -> Path:
        """Return the path of a job's result in format `fmt`."""
        return self.results / f"{checked(job_id)}.{fmt}"

    def put_upload(self, job_id: str, source: Path) -> None:
        """Hard-link the received upload into place (it sits in `tmp/`, on the same file system)."""
        os.link(source, self.upload(job_id))

    @contextmanager
    def fetch_upload(self, job_id: str) -> Iterator[Path]:
        """Give the upload's own path: nothing to copy."""
        yield self.upload(job_id)

    @contextmanager
    def store_result(self, job_id: str, fmt: str) -> Iterator[Path]:
        """Give a partial file beside the result; rename it into place once the block succeeds."""
        final = self.result(job_id, fmt)
        handle, name = tempfile.mkstemp(dir=self.results, prefix=f".{final.name}.", suffix=".part")
        os.close(handle)
        partial = Path(name)
        try:
            yield partial
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    def open_result(self, job_id: str, fmt: str) -> IO[bytes]:
        """Open the result file."""
        return self.result(job_id, fmt).open("rb")

    def result_url(self, job_id: str, fmt: str, download_name: str, seconds: int) -> str | None:
        """Return None: a directory has no URL of its own, the web serves the file."""
        return None

    def remove_upload(self, job_id: str) -> None:
        """Delete the upload file."""
        self.upload(job_id).unlink(missing_ok=True)

    def remove(self, job_id: str) -> int:
        """Delete every file of a job; missing files are fine."""
        paths = [self.upload(job_id), *self.results.glob(f"{checked(job_id)}.*")]
        removed = 0
        for path in paths:
            if path.exists():
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def job_ids(self, before: float) -> Iterator[str]:
        """Yield the job id of every upload and result file last written before `before`."""
        for path in [*self.uploads.iterdir(), *self.results.iterdir()]:
            job_id = path.name.split(".")[0]
            try:
                if is_job_id(job_id) and path.stat().st_mtime < before:
                    yield job_id
            except FileNotFoundError:
                pass  # its job ended meanwhile

    def sweep_partial(self, cutoff: float) -> int:
        """Delete abandoned uploads in `tmp/` and half-written results older than `cutoff`."""
        return sweep_directory([*self.tmp.iterdir(), *self.results.glob(".*.part")], cutoff)


def sweep_directory(paths: list[Path], cutoff: float) -> int:
    """Delete the files in `paths` last modified before `cutoff`; return how many."""
    removed = 0
    for path in paths:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        except FileNotFoundError:
            pass  # a request or job finished with it meanwhile
    return removed
