"""API keys: the key file, the Bearer check before every API call, and whose jobs a caller may touch."""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request

from web import share, usage
from web.errors import error_response

log = logging.getLogger(__name__)

MIN_KEY_LENGTH = 32
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RATE = re.compile(r"^[1-9][0-9]{0,8}/(second|minute|hour|day)$")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="imgjobs"'}


class KeyFileError(ValueError):
    """The key file cannot be used as it is; the message says where and why (never the key itself)."""


@dataclass(frozen=True)
class Key:
    """One line of the key file: a name, its secret, and what it may do."""

    name: str
    secret: str = field(repr=False)
    admin: bool = False
    limits: dict[str, Any] = field(default_factory=dict)


def parse(text: str) -> tuple[Key, ...]:
    """Read a key file: `name key [admin] [rate=N/unit] [jobs=N]` a line, a word starting with `#` a comment."""
    keys: list[Key] = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = list(itertools.takewhile(lambda word: not word.startswith("#"), raw.split()))
        if words:
            keys.append(_parse_line(number, words))
    for attribute in ("name", "secret"):
        values = [getattr(key, attribute) for key in keys]
        if len(set(values)) != len(values):
            raise KeyFileError(f"two lines have the same {'key' if attribute == 'secret' else attribute}")
    return tuple(keys)


def _parse_line(number: int, words: list[str]) -> Key:
    """Read one line's name, key and options."""
    if len(words) < 2:
        raise KeyFileError(f"line {number}: expected `name key [admin] [rate=N/minute] [jobs=N]`")
    name, secret, *options = words
    if not NAME.match(name):
        raise KeyFileError(f"line {number}: the name {name!r} is not 1-64 letters, digits, '.', '_' or '-'")
    if len(secret) < MIN_KEY_LENGTH or not secret.isascii():
        raise KeyFileError(f"line {number}: the key of {name!r} is not {MIN_KEY_LENGTH} or more ASCII characters")
    admin = False
    limits: dict[str, Any] = {}
    for place, option in enumerate(options, 3):
        if option == "admin":
            admin = True
        elif option.startswith("rate=") and RATE.match(option[5:]):
            limits["rate"] = option[5:]
        elif option.startswith("jobs=") and option[5:].isdigit() and 0 < int(option[5:]) < 10**6:
            limits["jobs"] = int(option[5:])
        else:
            raise KeyFileError(  # the word itself is not shown: it may be a key pasted in the wrong place
                f"line {number}: word {place} is not `admin`, `rate=N/second|minute|hour|day` or `jobs=N`"
            )
    return Key(name, secret, admin, limits)


class KeyRing:
    """The keys of the key file, read again whenever the file changes on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: tuple[Key, ...] = ()
        try:
            self._load(self._stat())
        except (OSError, KeyFileError) as exc:
            raise KeyFileError(f"API_KEYS_FILE {self.path}: {exc}") from None
        if not self._keys:
            log.warning("API_KEYS_FILE %s has no keys: every API call will be refused", self.path)

    def _stat(self) -> tuple[int, int, int]:
        """Return what tells an edited file from the one already read."""
        info = os.stat(self.path)
        return info.st_mtime_ns, info.st_size, info.st_ino

    def _load(self, stamp: tuple[int, int, int]) -> None:
        """Read and parse the file."""
        self._keys = parse(self.path.read_text(encoding="utf-8"))
        self._stamp = stamp

    def keys(self) -> tuple[Key, ...]:
        """Return the current keys; a file that became unreadable or invalid keeps the last good ones."""
        try:
            stamp = self._stat()
            if stamp != self._stamp:
                with self._lock:
                    if stamp != self._stamp:
                        self._load(stamp)
                        log.info("API_KEYS_FILE %s reloaded: %d key(s)", self.path, len(self._keys))
        except (OSError, UnicodeDecodeError, KeyFileError) as exc:
            log.error("API_KEYS_FILE %s not reloaded, keeping the last good keys: %s", self.path, exc)
        return self._keys

    def find(self, secret: str) -> Key | None:
        """Return the key with this secret, comparing every key in constant time."""
        given = secret.encode()
        found = None
        for key in self.keys():
            if hmac.compare_digest(key.secret.encode(), given):
                found = key
        return found


def init_app(app: Flask) -> None:
    """Load the key file when API_KEYS_FILE is set and check every API call against it."""
    path = app.config["API_KEYS_FILE"]
    app.extensions["api_keys"] = KeyRing(path) if path else None
    share.init_app(app)
    app.before_request(authenticate)


def keys_on() -> bool:
    """Tell whether API keys are configured."""
    return current_app.extensions.get("api_keys") is not None


def bearer() -> str:
    """Return the token of the request's `Authorization: Bearer` header, or an empty string."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate() -> Response | None:
    """Let an API call through with a valid key or share link when keys are on; answer 401 otherwise."""
    ring: KeyRing | None = current_app.extensions.get("api_keys")
    if ring is None or not (request.path + "/").startswith("/api/v1/"):
        return None
    if share.SIGNATURE in request.args:
        share.check()
        g.shared_link = True
        return None
    token = bearer()
    key = ring.find(token) if token else None
    if key is None:
        usage.count_rejection("unauthorized")
        return unauthorized("invalid_key" if token else "missing_key")
    g.key_name, g.key_limits, g.key_admin = key.name, dict(key.limits), key.admin
    return None


def unauthorized(code: str) -> Response:
    """Answer a call without a valid key: 401 JSON with the Bearer challenge."""
    message = {
        "missing_key": "This API needs a key: send it as `Authorization: Bearer <key>`.",
        "invalid_key": "The API key was not accepted: it is unknown or has been revoked.",
    }[code]
    response = error_response(401, code, message)
    response.headers.update(CHALLENGE)
    return response


def owner() -> str | None:
    """Return the name a new job is recorded under: the caller's key, or None when keys are off."""
    return str(g.key_name) if keys_on() else None


def scope() -> str | None:
    """Return the key whose jobs this request may see and change, or None when it may touch any."""
    if not keys_on() or g.get("key_admin") or g.get("shared_link"):
        return None
    return str(g.key_name)  # set by authenticate(); a request without it fails rather than sees all


def open_bind_problem(addresses: list[Any], config: dict[str, Any]) -> str | None:
    """Say why the web must not listen on these addresses as configured, or None when it may."""
    if config["API_KEYS_FILE"] or config["ALLOW_ANONYMOUS"]:
        return None
    exposed = [address for address in addresses if not _loopback(address)]
    if not exposed:
        return None
    where = ", ".join(f"{a[0]}:{a[1]}" if isinstance(a, tuple) else str(a) for a in exposed)
    return (
        f"refusing to listen on {where} without API keys: anyone who can reach it could see and delete "
        "every job. Make a key file and set API_KEYS_FILE (see the README, 'API keys'), bind to "
        "127.0.0.1 (HOST=127.0.0.1), or set ALLOW_ANONYMOUS=1 to serve without keys on purpose."
    )


def _loopback(address: Any) -> bool:
    """Tell whether a gunicorn address (a (host, port) pair, or a unix socket path) is local to this machine."""
    if not isinstance(address, tuple):
        return True  # a unix socket or an inherited file descriptor
    host = str(address[0]).strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
