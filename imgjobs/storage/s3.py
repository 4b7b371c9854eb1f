"""The object-store backend: `<prefix>/uploads/<id>` and `<prefix>/results/<id>.<format>` in an S3 bucket.

Nothing is shared between hosts but the bucket: each process keeps its partial files (uploads
being received, inputs fetched for a job, results being encoded) in its own `DATA_DIR/tmp`.
A PUT makes an object appear whole or not at all, so no reader sees half a result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlparse

import boto3
import boto3.exceptions
import botocore.exceptions
from botocore.config import Config

from imgjobs.jobs import MEDIA_TYPES
from imgjobs.storage import StorageError, checked, is_job_id
from imgjobs.storage.local import sweep_directory

#: Fail fast when the store is down (the web answers 503 rather than hanging a request).
CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    """An S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph RGW); credentials from the AWS_* variables."""

    def __init__(self, url: str, endpoint_url: str | None, scratch: Path) -> None:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"STORAGE_URL={url!r} names no bucket: use s3://bucket/prefix")
        self.bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.tmp = Path(scratch).resolve() / "tmp"
        session = boto3.session.Session()
        self.client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=session.region_name or "us-east-1", config=CLIENT_CONFIG
        )

    def _upload_key(self, job_id: str) -> str:
        """Return the key of a job's upload."""
        return f"{self.prefix}uploads/{checked(job_id)}"

    def _result_key(self, job_id: str, fmt: str) -> str:
        """Return the key of a job's result."""
        return f"{self.prefix}results/{checked(job_id)}.{fmt}"

    def ensure(self) -> None:
        """Create the local scratch directory (the bucket is made by whoever runs the store)."""
        self.tmp.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        """Raise OSError unless the bucket answers and the scratch directory takes a write."""
        self.ensure()
        with tempfile.NamedTemporaryFile(dir=self.tmp, prefix="ready-"), _translated("the bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def put_upload(self, job_id: str, source: Path) -> None:
        """Stream the received upload to the bucket (multipart when it is large)."""
        with _translated(f"upload {job_id}"):
            self.client.upload_file(str(source), self.bucket, self._upload_key(job_id))

    @contextmanager
    def fetch_upload(self, job_id: str) -> Iterator[Path]:
        """Download the upload into scratch space for the block, then delete the copy."""
        self.ensure()
        with tempfile.TemporaryDirectory(dir=self.tmp, prefix=f"job-{checked(job_id)}-") as directory:
            path = Path(directory) / "input"
            with _translated(f"upload {job_id}"):
                self.client.download_file(self.bucket, self._upload_key(job_id), str(path))
            yield path

    @contextmanager
    def store_result(self, job_id: str, fmt: str) -> Iterator[Path]:
        """Give a scratch path to encode into; PUT it as the result once the block succeeds."""
        self.ensure()
        with tempfile.TemporaryDirectory(dir=self.tmp, prefix=f"result-{checked(job_id)}-") as directory:
            path = Path(directory) / f"{job_id}.{fmt}"
            yield path
            with _translated(f"result {job_id}"):
                self.client.upload_file(
                    str(path), self.bucket, self._result_key(job_id, fmt),
                    ExtraArgs={"ContentType": MEDIA_TYPES.get(fmt, "application/octet-stream")},
                )

    def open_result(self, job_id: str, fmt: str) -> IO[bytes]:
        """Open the result object as a stream (read in chunks, never whole into memory)."""
        with _translated(f"result {job_id}"):
            body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=self._result_key(job_id, fmt))["Body"]
        return body

    def result_url(self, job_id: str, fmt: str, download_name: str, seconds: int) -> str | None:
        """Return a presigned GET URL for the result, naming the download; FileNotFoundError when gone."""
        key = self._result_key(job_id, fmt)
        with _translated(f"result {job_id}"):
            self.client.head_object(Bucket=self.bucket, Key=key)
            url: str = self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(download_name)}",
                },
                ExpiresIn=seconds,
            )
        return url

    def remove_upload(self, job_id: str) -> None:
        """Delete the upload object (deleting a missing key succeeds)."""
        with _translated(f"upload {job_id}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._upload_key(job_id))

    def remove(self, job_id: str) -> int:
        """Delete the job's upload and results; return how many objects there were."""
        keys = [self._upload_key(job_id), *self._keys(f"{self.prefix}results/{checked(job_id)}.")]
        with _translated(f"job {job_id}"):
            present = [key for key in keys if self._exists(key)]
            if present:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in present]})
        return len(present)

    def job_ids(self, before: float) -> Iterator[str]:
        """Yield the job id of every upload and result object last written before `before`."""
        for folder in ("uploads/", "results/"):
            for item in self._listing(self.prefix + folder):
                job_id = item["Key"].rsplit("/", 1)[-1].split(".")[0]
                if is_job_id(job_id) and item["LastModified"].timestamp() < before:
                    yield job_id

    def sweep_partial(self, cutoff: float) -> int:
        """Delete this process's abandoned scratch files (the store itself holds no partial objects)."""
        self.ensure()
        return sweep_directory(list(self.tmp.iterdir()), cutoff)

    def _keys(self, prefix: str) -> Iterator[str]:
        """Yield every key under `prefix`."""
        for item in self._listing(prefix):
            yield item["Key"]

    def _listing(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Yield every object under `prefix` (its Key, LastModified, ...), a page at a time."""
        with _translated("the bucket listing"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Contents", [])

    def _exists(self, key: str) -> bool:
        """Tell whether an object exists."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return False
            raise
        return True


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn the S3 client's errors into FileNotFoundError (no such object) or StorageError."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in NOT_FOUND:
            raise FileNotFoundError(f"{what} is not in the store") from None
        raise StorageError(f"the object store refused {what}: {exc}") from None
    except (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error) as exc:
        raise StorageError(f"the object store cannot be reached for {what}: {exc}") from None


def _code(exc: botocore.exceptions.ClientError) -> str:
    """Return the error code S3 answered with."""
    error: dict[str, Any] = exc.response.get("Error", {})
    return str(error.get("Code", ""))
