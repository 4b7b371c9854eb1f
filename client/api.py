"""The imgjobs HTTP API as Python calls: one session, bearer key, retries on 429/503 with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

#: Answers that say "not now": retried after their Retry-After, else after a growing pause.
RETRY_STATUSES = (429, 503)
RETRIES = 6
MAX_PAUSE = 30.0
TIMEOUT = 60.0  # seconds to connect and between bytes; long-polls ask for less

Sleep = Callable[[float], None]


class ApiProblem(Exception):
    """The API answered with an error (or could not be reached): its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def pause(response: requests.Response, attempt: int) -> float:
    """Return how long to wait before retrying: Retry-After if it gives seconds, else 1, 2, 4 ... s; capped."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        seconds = 2.0**attempt
    return min(max(seconds, 0.0), MAX_PAUSE)


class Api:
    """A client of one imgjobs service."""

    def __init__(self, url: str, key: str | None = None, sleep: Sleep = time.sleep) -> None:
        self.url = url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.sleep = sleep
        self.retried = 0  # how many answers were retried, for the summary

    def call(self, method: str, path: str, body: Callable[[], dict[str, Any]] | None = None,
             **kwargs: Any) -> requests.Response:
        """Send a request, retrying 429/503 answers; `body` builds fresh keyword arguments for each try."""
        for attempt in range(RETRIES + 1):
            extra = body() if body else {}
            try:
                response = self.session.request(method, self.url + path, timeout=TIMEOUT, **kwargs, **extra)
            except requests.ConnectionError:
                raise ApiProblem(0, "unreachable", f"Cannot reach {self.url}: is the service running?") from None
            except requests.Timeout:
                raise ApiProblem(0, "timeout", f"{self.url} did not answer within {TIMEOUT:g} s.") from None
            if response.status_code not in RETRY_STATUSES or attempt == RETRIES:
                break
            self.retried += 1
            response.close()
            self.sleep(pause(response, attempt))
        if not response.ok:
            raise problem(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its JSON body (None for 204)."""
        response = self.call(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def ops(self) -> dict[str, Any]:
        """Return the op catalogue, presets and limits."""
        return dict(self.json("GET", "/ops"))

    def submit(self, path: Path, fields: dict[str, str], progress: Callable[[int, int], None] | None = None,
               ) -> dict[str, Any]:
        """Upload `path` with the form `fields`, streaming it; `progress(sent, total)` follows the bytes."""

        with path.open("rb") as handle:

            def body() -> dict[str, Any]:
                handle.seek(0)  # each retry sends the whole file again
                encoder = MultipartEncoder({**fields, "file": (path.name, handle, "application/octet-stream")})
                monitor = MultipartEncoderMonitor(encoder, lambda m: progress and progress(m.bytes_read, m.len))
                return {"data": monitor, "headers": {"Content-Type": monitor.content_type}}

            return dict(self.json("POST", "/jobs", body=body))

    def job(self, job_id: str, wait: float = 0) -> dict[str, Any]:
        """Return a job, long-polling up to `wait` seconds for it to end."""
        return dict(self.json("GET", f"/jobs/{job_id}", params={"wait": wait} if wait else None))

    def jobs(self, page: int, per_page: int) -> dict[str, Any]:
        """Return one page of recent jobs."""
        return dict(self.json("GET", "/jobs", params={"page": page, "per_page": per_page}))

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel or stop a job, or delete an ended one (None)."""
        return self.json("DELETE", f"/jobs/{job_id}")

    @contextmanager
    def result(self, job_id: str) -> Iterator[requests.Response]:
        """Yield the streaming response of a finished job's image."""
        response = self.call("GET", f"/jobs/{job_id}/result", stream=True)
        try:
            yield response
        finally:
            response.close()


def problem(response: requests.Response) -> ApiProblem:
    """Turn an error answer into an ApiProblem with the API's own message."""
    try:
        error = response.json()["error"]
        return ApiProblem(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        reason = f"{response.status_code} {response.reason}".strip()
        return ApiProblem(response.status_code, "http_error", f"The server answered {reason}.")
