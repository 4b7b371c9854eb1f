"""Settings read from environment variables, in one place, with working defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

#: name -> (type, default). Every setting the service reads; documented in the README.
SETTINGS: dict[str, tuple[type, Any]] = {
    "HOST": (str, "127.0.0.1"),
    "PORT": (int, 5000),
    "WEB_CONCURRENCY": (int, 2),
    "WEB_THREADS": (int, 8),
    "REDIS_URL": (str, "redis://localhost:6379/0"),
    "REDIS_PASSWORD_FILE": (str, ""),  # a file holding Redis's password (a secret), put into REDIS_URL
    "DATA_DIR": (str, "./data"),
    "QUEUE_NAME": (str, "images"),
    "MAX_UPLOAD_MB": (float, 25.0),
    "MAX_PIXELS": (int, 50_000_000),
    "MAX_STEPS": (int, 20),
    "JOB_TIMEOUT": (int, 120),
    "RESULT_TTL": (int, 86_400),
    "FAILURE_TTL": (int, 604_800),
    "JOB_RETRIES": (int, 2),
    "WORKERS": (int, 2),
    "WORKER_MAX_JOBS": (int, 500),
    # cost bounds (issue 8): every step's size, worker memory, per-client limits
    "MAX_DIMENSION": (int, 16384),
    "WORKER_MEMORY_MB": (int, 0),  # 0: sized from MAX_PIXELS by memory_limit()
    "MAX_FILENAME_BYTES": (int, 255),
    "RESULT_RESOURCE_POLICY": (str, "same-origin"),  # Cross-Origin-Resource-Policy of results
    "RATE_LIMIT": (str, "60/minute"),  # job submissions per client (Flask-Limiter syntax); a key's "rate" wins
    "JOBS_PER_CLIENT": (int, 20),  # queued + running jobs per client; a key's "jobs" wins
    "HEAVY_PIXELS": (int, 200_000_000),  # jobs costing more go to the heavy queue
    "CORS_ORIGINS": (str, ""),  # comma-separated origins whose pages may call the API; none by default
    # peers whose X-Forwarded-For names the client (addresses, networks, or *): the proxy in front
    "FORWARDED_ALLOW_IPS": (str, "127.0.0.1"),
    # storage backend (issue #10): empty = the shared DATA_DIR; s3://bucket/prefix = an object store
    "STORAGE_URL": (str, ""),
    "S3_ENDPOINT_URL": (str, ""),
    "RESULT_REDIRECT": (int, 0),
    # Reliability under faults (issue #13)
    "WORKER_LOST_AFTER": (int, 20),
    "MIN_FREE_MB": (float, 100.0),
    "MAX_QUEUED": (int, 1000),
    "REDIS_TIMEOUT": (float, 0.3),
    # accounts: API keys, private jobs, signed share links (README "API keys")
    "API_KEYS_FILE": (str, ""),
    "ALLOW_ANONYMOUS": (int, 0),
    "SIGNING_KEY": (str, ""),
    "SIGNING_KEY_FILE": (str, ""),
    "SHARE_TTL": (int, 3600),
    "METRICS_TOKEN": (str, ""),
}


#: What a worker child holds before its first job (interpreter, numpy, Pillow), in MB.
WORKER_BASE_MB = 256
#: What the heaviest op holds at once per input pixel (source, result and working copies in RGBA).
BYTES_PER_PIXEL = 24


def memory_limit(settings: Mapping[str, Any]) -> int:
    """Return the bytes of memory a worker child may use: WORKER_MEMORY_MB, else sized from MAX_PIXELS."""
    megabytes = settings["WORKER_MEMORY_MB"] or WORKER_BASE_MB + settings["MAX_PIXELS"] * BYTES_PER_PIXEL // 2**20
    return int(megabytes) * 2**20


class ConfigError(ValueError):
    """A setting in the environment cannot be used: a wrong type, a bad value, a missing or empty file."""


def from_env(environ: Mapping[str, str] = os.environ, *, redis: bool = True) -> dict[str, Any]:
    """Return every setting, taken from `environ` where set, else its default.

    With `redis` (anything but the batch command, which needs no Redis), REDIS_URL carries
    the password in REDIS_PASSWORD_FILE when that is set, so every connection made from it
    (web, worker, health check, rate limiter) authenticates.
    """
    config = {}
    for name, (kind, default) in SETTINGS.items():
        raw = environ.get(name, "").strip()
        try:
            config[name] = kind(raw) if raw else default
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if redis and config["REDIS_PASSWORD_FILE"]:
        config["REDIS_URL"] = with_password(config["REDIS_URL"], read_password(config["REDIS_PASSWORD_FILE"]))
    return config


def read_password(path: str) -> str:
    """Return the password in `path` (surrounding whitespace and the final newline left out)."""
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"REDIS_PASSWORD_FILE {path}: {exc}") from None
    if not password:
        raise ConfigError(f"REDIS_PASSWORD_FILE {path} is empty")
    return password


def with_password(url: str, password: str) -> str:
    """Return the Redis `url` with `password` in place of any it has (its user, if any, kept)."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
