"""Where a job's files live: one small interface, one backend per STORAGE_URL scheme.

`file://` (or no STORAGE_URL) keeps uploads and results in the shared DATA_DIR; `s3://bucket/prefix`
keeps them in an S3-compatible object store, and DATA_DIR holds only this process's partial files.
Callers use the methods of `Storage` and never ask which backend they have.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


class StorageError(OSError):
    """The store could not be reached or refused a request."""


class Storage(Protocol):
    """A job's files: its upload, its result, and local scratch space (`tmp`) for partial files."""

    tmp: Path

    def ensure(self) -> None:
        """Create the local directories if they are missing."""

    def check(self) -> None:
        """Raise OSError unless a file can be stored right now."""

    def put_upload(self, job_id: str, source: Path) -> None:
        """Store the checked upload at `source` as the job's input."""

    def fetch_upload(self, job_id: str) -> AbstractContextManager[Path]:
        """Give the job's upload as a local file for the duration of the block."""

    def store_result(self, job_id: str, fmt: str) -> AbstractContextManager[Path]:
        """Give a local path to write the result to; store it, whole, when the block succeeds."""

    def open_result(self, job_id: str, fmt: str) -> IO[bytes]:
        """Open the job's result for reading; FileNotFoundError when it is gone."""

    def result_url(self, job_id: str, fmt: str, download_name: str, seconds: int) -> str | None:
        """Return a URL the client may fetch the result from directly, or None to have it served."""

    def remove_upload(self, job_id: str) -> None:
        """Delete the job's upload; a missing one is fine."""

    def remove(self, job_id: str) -> int:
        """Delete every file of a job; return how many there were."""

    def job_ids(self, before: float) -> Iterator[str]:
        """Yield the id of every job with a stored file last written before `before` (a Unix time)."""

    def sweep_partial(self, cutoff: float) -> int:
        """Delete partial files last touched before `cutoff` (a Unix time); return how many."""


def new_job_id() -> str:
    """Return a fresh, unguessable job id."""
    return uuid.uuid4().hex


def is_job_id(text: str) -> bool:
    """Tell whether `text` has the shape of a job id (so it is safe in a path or key)."""
    return bool(_JOB_ID.match(text))


def checked(job_id: str) -> str:
    """Return `job_id`, refusing anything that is not a job id."""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def from_config(config: Mapping[str, Any]) -> Storage:
    """Return the storage the settings name (STORAGE_URL, S3_ENDPOINT_URL, DATA_DIR)."""
    return _open(config.get("STORAGE_URL", ""), config.get("S3_ENDPOINT_URL", ""), str(config["DATA_DIR"]))


@lru_cache(maxsize=8)
def _open(url: str, endpoint_url: str, data_dir: str) -> Storage:
    """Build a backend once per distinct setting (an S3 client is costly to make, and thread-safe)."""
    scheme = urlparse(url).scheme if url else "file"
    if scheme == "file":
        from imgjobs.storage.local import LocalStorage

        return LocalStorage(urlparse(url).path if url else data_dir)
    if scheme == "s3":
        from imgjobs.storage.s3 import S3Storage  # boto3 is imported only by those who use it

        return S3Storage(url, endpoint_url or None, Path(data_dir))
    raise ValueError(f"STORAGE_URL={url!r}: use file:///path or s3://bucket/prefix")
