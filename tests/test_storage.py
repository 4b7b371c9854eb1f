"""Both storage backends keep the same contract: the local directory and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from imgjobs import storage
from imgjobs.storage import Storage, StorageError, new_job_id
from imgjobs.storage.s3 import S3Storage
from tests.services import S3Server, free_port


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "file":
        store = storage.from_config({"DATA_DIR": str(tmp_path)})
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        store = storage.from_config({**s3.settings("contract", prefix=new_job_id()), "DATA_DIR": str(tmp_path)})
    store.ensure()
    yield store


def put(store: Storage, data: bytes) -> str:
    """Store `data` as a new job's upload and return the job id."""
    job_id = new_job_id()
    source = store.tmp / f"upload-{job_id}"
    source.write_bytes(data)
    store.put_upload(job_id, source)
    source.unlink()
    return job_id


def write_result(store: Storage, job_id: str, data: bytes, fmt: str = "png") -> None:
    """Store `data` as the job's result the way the worker does: write a file, then leave the block."""
    with store.store_result(job_id, fmt) as path:
        path.write_bytes(data)


def read_result(store: Storage, job_id: str, fmt: str = "png") -> bytes:
    with store.open_result(job_id, fmt) as stream:
        return stream.read()


def test_an_upload_comes_back_as_a_local_file(backend):
    job_id = put(backend, b"image bytes")
    with backend.fetch_upload(job_id) as path:
        assert path.read_bytes() == b"image bytes"


def test_a_result_is_stored_whole_and_read_back(backend):
    job_id = put(backend, b"in")
    write_result(backend, job_id, b"result " * 1000)
    assert read_result(backend, job_id) == b"result " * 1000


def test_a_failed_write_stores_no_result(backend):
    job_id = put(backend, b"in")
    with pytest.raises(RuntimeError), backend.store_result(job_id, "png") as path:
        path.write_bytes(b"half")
        raise RuntimeError("the encoder died")
    with pytest.raises(FileNotFoundError):
        backend.open_result(job_id, "png")


def test_missing_files_are_file_not_found(backend):
    job_id = new_job_id()
    with pytest.raises(FileNotFoundError), backend.fetch_upload(job_id) as path:
        path.read_bytes()
    with pytest.raises(FileNotFoundError):
        backend.open_result(job_id, "png")


def test_remove_deletes_every_file_of_a_job_only(backend):
    job_id, other = put(backend, b"in"), put(backend, b"other")
    write_result(backend, job_id, b"out")
    assert set(backend.job_ids(time.time() + 60)) == {job_id, other}
    assert backend.remove(job_id) == 2
    assert backend.remove(job_id) == 0
    assert set(backend.job_ids(time.time() + 60)) == {other}
    backend.remove_upload(other)
    backend.remove_upload(other)  # a missing upload is fine
    assert set(backend.job_ids(time.time() + 60)) == set()


def test_sweep_partial_deletes_only_stale_scratch_files(backend):
    stale, fresh = backend.tmp / "upload-abandoned", backend.tmp / "upload-in-progress"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert backend.sweep_partial(time.time() - 3600) == 1
    assert not stale.exists() and fresh.exists()


def test_check_passes_on_a_working_store(backend):
    backend.check()


def test_the_file_backend_has_no_urls(tmp_path):
    store = storage.from_config({"DATA_DIR": str(tmp_path)})
    store.ensure()
    job_id = put(store, b"in")
    write_result(store, job_id, b"out")
    assert store.result_url(job_id, "png", "photo.png", 60) is None


def test_a_presigned_url_serves_the_result_under_its_name(s3_server, tmp_path):
    store = storage.from_config({**s3_server.settings("presign"), "DATA_DIR": str(tmp_path)})
    store.ensure()
    job_id = put(store, b"in")
    write_result(store, job_id, b"out bytes")
    url = store.result_url(job_id, "png", "photo.png", 60)
    assert url and url.startswith(s3_server.endpoint)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"out bytes"
    assert "photo.png" in response.headers["Content-Disposition"]
    with pytest.raises(FileNotFoundError):
        store.result_url(new_job_id(), "png", "gone.png", 60)


def test_an_unreachable_store_raises_storage_error(tmp_path):
    store = S3Storage("s3://nowhere/prefix", f"http://127.0.0.1:{free_port()}", tmp_path)
    store.ensure()
    with pytest.raises(StorageError):
        store.check()
    source = tmp_path / "upload"
    source.write_bytes(b"x")
    with pytest.raises(StorageError):
        store.put_upload(new_job_id(), source)


def test_storage_url_chooses_the_backend(tmp_path):
    assert type(storage.from_config({"DATA_DIR": str(tmp_path)})).__name__ == "LocalStorage"
    local = storage.from_config({"STORAGE_URL": f"file://{tmp_path}/shared", "DATA_DIR": "/elsewhere"})
    assert local.tmp == tmp_path / "shared" / "tmp"
    with pytest.raises(ValueError, match="STORAGE_URL"):
        storage.from_config({"STORAGE_URL": "ftp://host/x", "DATA_DIR": str(tmp_path)})
