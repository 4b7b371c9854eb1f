"""Signed share links: a result URL with an expiry and an HMAC-SHA256 signature, good without a key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

from flask import Flask, current_app, request, url_for

from imgjobs.config import ConfigError
from web import store
from web.errors import ApiError

EXPIRES = "expires"
SIGNATURE = "signature"
MIN_SECRET_LENGTH = 32
#: Where a random signing key is kept when none is configured, so every web process signs alike.
GENERATED_KEY = "imgjobs:signing-key"


def init_app(app: Flask) -> None:
    """Read the signing keys: SIGNING_KEY_FILE's or SIGNING_KEY's list, the first one signing."""
    path = app.config["SIGNING_KEY_FILE"]
    try:
        text = Path(path).read_text(encoding="utf-8") if path else app.config["SIGNING_KEY"]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"SIGNING_KEY_FILE {path}: {exc}") from None
    keys = [key.encode() for key in text.replace(",", " ").split()]
    if any(len(key) < MIN_SECRET_LENGTH for key in keys):
        raise ConfigError(f"every signing key must be {MIN_SECRET_LENGTH} characters or more")
    if app.config["SHARE_TTL"] < 1:
        raise ConfigError(f"SHARE_TTL={app.config['SHARE_TTL']} must be 1 second or more")
    app.extensions["signing_keys"] = keys


def signing_keys() -> list[bytes]:
    """Return the keys links are checked with, the first one signing; a generated one kept in Redis if none is set."""
    keys: list[bytes] = current_app.extensions["signing_keys"]
    if not keys:
        connection = store.connection()
        connection.set(GENERATED_KEY, secrets.token_urlsafe(32), nx=True)
        keys = [bytes(connection.get(GENERATED_KEY) or b"")]  # type: ignore[arg-type]
        current_app.extensions["signing_keys"] = keys
    return keys


def sign(path: str, expires: int | str, key: bytes) -> str:
    """Return the signature of a path and its expiry (unix seconds), base64url without padding."""
    digest = hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def link(job_id: str) -> str:
    """Return a signed link to a job's result, good for SHARE_TTL seconds."""
    path = url_for("api.get_result", job_id=job_id)
    expires = int(time.time()) + current_app.config["SHARE_TTL"]
    signature = sign(path.removeprefix(request.script_root), expires, signing_keys()[0])
    return f"{path}?{EXPIRES}={expires}&{SIGNATURE}={signature}"


def check() -> None:
    """Let a request with a valid, unexpired signature through; raise a 403 otherwise."""
    expires, given = request.args.get(EXPIRES, ""), request.args.get(SIGNATURE, "")
    well_formed = expires.isascii() and expires.isdigit() and len(expires) <= 12 and given.isascii()
    if request.method not in ("GET", "HEAD") or not well_formed:
        raise ApiError(403, "invalid_signature", "This share link is not valid.")
    valid = False
    for key in signing_keys():
        valid |= hmac.compare_digest(sign(request.path, expires, key), given)
    if not valid:
        raise ApiError(403, "invalid_signature", "This share link is not valid: it was changed, or its key retired.")
    if int(expires) < time.time():
        raise ApiError(403, "link_expired", "This share link has expired; ask for a new one.")
