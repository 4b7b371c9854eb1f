"""One way to answer errors: JSON `{"error": {"status", "code", "message"}}` for every failure."""

from __future__ import annotations

import errno
import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from imgjobs.catalog import StepError, TooManyPixels

log = logging.getLogger(__name__)

#: Messages for the errors Flask and Werkzeug raise themselves, by status.
HTTP_MESSAGES = {
    404: ("not_found", "No such resource. The API lives under /api/v1 (see GET /api/v1/ops)."),
    405: ("method_not_allowed", "This URL does not accept that HTTP method."),
    413: ("upload_too_large", "The upload is larger than the limit of {max_mb:g} MB."),
}


FIELD_TOO_LARGE = (
    "A text field or a part's headers (its filename) are over {field_kb} KB, or the form has over {parts} parts."
)


class ApiError(Exception):
    """An error the client can act on, with its HTTP status and a short code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def storage_full(message: str) -> ApiError:
    """Say the data directory has no room for another upload."""
    return ApiError(507, "storage_full", f"{message}; try again later.", headers={"Retry-After": "60"})


def error_response(status: int, code: str, message: str, **detail: Any) -> Response:
    """Build the JSON response for an error; `detail` adds fields such as the failing step."""
    response = jsonify({"error": {"status": status, "code": code, "message": message, **detail}})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    """Answer every error the app can raise with the JSON shape above."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(StepError)
    def step_error(exc: StepError) -> Response:
        return error_response(400, "invalid_ops", str(exc), step=exc.step, param=exc.param)

    @app.errorhandler(OSError)
    def storage_error(exc: OSError) -> Response:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.warning("data directory full: %s", exc)
            return api_error(storage_full("The data directory is full"))
        return unexpected(exc)

    @app.errorhandler(redis.exceptions.OutOfMemoryError)
    def redis_full(exc: redis.RedisError) -> Response:
        log.warning("redis full: %s", exc)
        message = "The job queue (Redis) is out of memory."
        return api_error(ApiError(503, "queue_full", message, headers={"Retry-After": "30"}))

    @app.errorhandler(TooManyPixels)
    def too_many_pixels(exc: TooManyPixels) -> Response:
        return error_response(422, "too_many_pixels", str(exc), step=exc.step)

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError) -> Response:
        log.warning("redis unavailable: %s", exc)
        return error_response(503, "queue_unavailable", "The job queue (Redis) cannot be reached; try again shortly.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.response is not None:  # built with error_response already (e.g. a rate limit's answer)
            return exc.response  # type: ignore[return-value]
        status = exc.code or 500
        code, message = HTTP_MESSAGES.get(status, (_snake(exc.name), exc.description or exc.name))
        if status == 413 and (request.content_length or 0) <= (app.config["MAX_CONTENT_LENGTH"] or 0):
            code, message = "field_too_large", FIELD_TOO_LARGE  # the body is within the limit, a field is not
        limits = {"max_mb": app.config["MAX_UPLOAD_MB"], "field_kb": app.config["MAX_FORM_MEMORY_SIZE"] // 1024,
                  "parts": app.config["MAX_FORM_PARTS"]}
        response = error_response(status, code, message.format(**limits))
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value  # e.g. Allow on a 405
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")


def _snake(name: str) -> str:
    """Turn an HTTP reason like 'Bad Request' into 'bad_request'."""
    return "_".join(name.lower().replace("-", " ").split())
