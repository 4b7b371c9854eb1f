"""Uploads: streamed to a temp file under DATA_DIR/tmp, then checked by content before any job exists."""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import Request, current_app
from PIL import Image, UnidentifiedImageError

from imgjobs import storage
from imgjobs.jobs import DECODE_ERRORS, INPUT_FORMATS
from imgjobs.storage import Storage
from web.errors import ApiError, storage_full

ORIENTATION = 0x0112
#: The request body is read this much at a time (Werkzeug then parses it in its own 64 KB steps).
BODY_READ_BYTES = 1024 * 1024


class UploadRequest(Request):
    """A request whose file parts go to disk under DATA_DIR/tmp as they come, a megabyte at a time.

    The temp file is deleted when the request ends, even when the body broke off or the disk
    filled up half-way; `keep()` hands it to the storage first.
    """

    def _get_file_stream(
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        store = storage.from_config(current_app.config)
        minimum = current_app.config["MIN_FREE_MB"]
        try:
            store.ensure()  # the volume may have been emptied since start-up
            if free_mb(store) >= minimum:
                stream = tempfile.NamedTemporaryFile(dir=store.tmp, prefix=f"{spool_prefix()}{os.getpid()}-")
                self.__dict__.setdefault("_spooled", []).append(stream)
                return stream
        except OSError as exc:
            raise ApiError(503, "storage_unavailable", f"The data directory is not writable: {exc}.") from None
        raise storage_full(f"The data directory has less than {minimum:g} MB free")

    def _get_stream_for_parsing(self) -> IO[bytes]:
        """Return the body behind a 1 MB read buffer.

        gunicorn reads ahead up to 1 MB and copies what is left of it on every read, so
        Werkzeug's 64 KB reads cost it a copy of the rest each time: a megabyte at once is
        a single copy. The buffer lives as long as the request (closing it would close the body).
        """
        buffered = io.BufferedReader(super()._get_stream_for_parsing(), BODY_READ_BYTES)  # type: ignore[type-var]
        self.__dict__["_buffered"] = buffered
        return buffered

    def close(self) -> None:
        """Close every temp file, also those of a form whose parsing was cut short (by a 413 or a full disk)."""
        super().close()
        for stream in self.__dict__.get("_spooled", ()):
            stream.close()


def spool_prefix() -> str:
    """Return how this host's upload temp files start; the owning process's pid follows."""
    return f"upload-{socket.gethostname()}-"


def sweep_spooled(store: Storage) -> int:
    """Delete this host's upload temp files whose process is gone (killed mid-upload); return how many."""
    removed = 0
    for path in store.tmp.glob(spool_prefix() + "*"):
        pid = path.name[len(spool_prefix()):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Tell whether a process with this pid runs here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    return True


def free_mb(store: Storage) -> float:
    """Return the free space of the file system the uploads are received on, in MB."""
    return shutil.disk_usage(store.tmp).free / (1024 * 1024)


@dataclass(frozen=True)
class ImageInfo:
    """What the upload turned out to be."""

    format: str
    width: int
    height: int
    mode: str
    frames: int
    bytes: int
    turned: bool = False  # EXIF orientation swaps width and height when the worker applies it

    @property
    def upright(self) -> tuple[int, int]:
        """Return the size the worker's steps start from (EXIF orientation applied)."""
        return (self.height, self.width) if self.turned else (self.width, self.height)

    def as_dict(self) -> dict[str, Any]:
        """Describe the input for the job's JSON."""
        return {k: getattr(self, k) for k in ("format", "width", "height", "mode", "frames", "bytes")}


def inspect(path: Path, max_pixels: int) -> ImageInfo:
    """Identify the image at `path` from its header and structure, never decoding its pixels.

    Memory stays bounded whatever the file: Pillow reads the header, counts frames and, for
    PNG, walks the chunks checking their CRCs without inflating them. A file that only breaks
    when decoded (a truncated JPEG, corrupt compressed data) fails in the worker instead.
    """
    size = path.stat().st_size
    if size == 0:
        raise ApiError(400, "empty_file", "The uploaded file is empty.")
    try:
        with Image.open(path, formats=INPUT_FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise _too_many_pixels(width, height, max_pixels)
            fmt = "JPEG" if image.format == "MPO" else image.format or ""
            info = ImageInfo(fmt, width, height, image.mode, getattr(image, "n_frames", 1), size, _turned(image))
            image.verify()  # PNG: every chunk's CRC up to IEND; other formats: nothing more to read cheaply
    except UnidentifiedImageError:
        raise _unidentified(path) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _too_many_pixels(0, 0, max_pixels) from None
    except DECODE_ERRORS as exc:
        raise ApiError(422, "undecodable_image", f"The image could not be decoded: {exc}.") from None
    return info


def _turned(image: Image.Image) -> bool:
    """Tell whether the EXIF orientation swaps width and height, reading only the header."""
    if image.format == "PNG":  # PngImageFile.getexif() decodes the whole image to find a late eXIf chunk
        exif = Image.Exif()
        if image.info.get("exif"):
            exif.load(image.info["exif"])
    else:
        exif = image.getexif()
    return exif.get(ORIENTATION, 1) in (5, 6, 7, 8)


def _unidentified(path: Path) -> ApiError:
    """Tell a broken image of an allowed type (422) from a file of another type (415)."""
    with path.open("rb") as handle:
        head = handle.read(64)
    Image.init()
    accepts = [Image.OPEN[name][1] for name in INPUT_FORMATS if name in Image.OPEN]
    if any(accept and accept(head) for accept in accepts):
        return ApiError(422, "undecodable_image", "The file looks like an image but its header is damaged.")
    allowed = ", ".join(INPUT_FORMATS)
    return ApiError(415, "unsupported_type", f"The file is not an image of an accepted type ({allowed}).")


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ApiError:
    """Say the image has more pixels than allowed."""
    size = f" ({width}x{height})" if width else ""
    message = f"The image{size} has more than the limit of {max_pixels:,} pixels; scale it down first."
    return ApiError(422, "too_many_pixels", message)


def on_disk(stream: IO[bytes]) -> Path:
    """Return where a streamed upload is on disk, all of it written out."""
    stream.flush()
    return Path(stream.name)


def keep(stream: IO[bytes], job_id: str) -> None:
    """Store the streamed upload as the job's input (the temp name vanishes at request end)."""
    try:
        storage.from_config(current_app.config).put_upload(job_id, on_disk(stream))
    except OSError as exc:
        raise ApiError(503, "storage_unavailable", f"The upload could not be stored: {exc}.") from None
