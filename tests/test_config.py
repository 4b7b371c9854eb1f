"""Settings from the environment: REDIS_PASSWORD_FILE put into REDIS_URL for every connection."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from imgjobs.config import ConfigError, from_env
from tests.services import RedisServer
from web import create_app


def password_file(tmp_path: Path, text: str) -> str:
    """Write `text` to a password file and return its path."""
    path = tmp_path / "redis-password"
    path.write_text(text, encoding="utf-8")
    return str(path)


def connection_kwargs(url: str) -> dict[str, object]:
    """Return what redis-py makes of `url`: host, port, username, password, db."""
    return dict(redis.Redis.from_url(url).connection_pool.connection_kwargs)


def test_without_a_password_file_the_url_is_left_alone() -> None:
    assert from_env({"REDIS_URL": "redis://:own@redis:6379/2"})["REDIS_URL"] == "redis://:own@redis:6379/2"
    assert from_env({})["REDIS_PASSWORD_FILE"] == ""


def test_the_password_file_goes_into_the_url(tmp_path: Path) -> None:
    path = password_file(tmp_path, "s3cret\n")
    settings = from_env({"REDIS_URL": "redis://redis:6379/0", "REDIS_PASSWORD_FILE": path})
    assert settings["REDIS_URL"] == "redis://:s3cret@redis:6379/0"
    kwargs = connection_kwargs(settings["REDIS_URL"])
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("redis", 6379, 0, "s3cret")


def test_the_file_replaces_a_password_in_the_url_and_keeps_its_user(tmp_path: Path) -> None:
    path = password_file(tmp_path, "new")
    replaced = from_env({"REDIS_URL": "redis://:old@h:1/0", "REDIS_PASSWORD_FILE": path})["REDIS_URL"]
    assert replaced == "redis://:new@h:1/0"
    with_user = from_env({"REDIS_URL": "rediss://app:old@h:1/3", "REDIS_PASSWORD_FILE": path})["REDIS_URL"]
    kwargs = connection_kwargs(with_user)
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", "new", 3)


@pytest.mark.parametrize("password", ["p@ss:w/rd#?%", "with space", "ünïcode", "x" * 200])
def test_any_password_survives_the_url(tmp_path: Path, password: str) -> None:
    url = from_env({"REDIS_URL": "redis://[::1]:6380/1", "REDIS_PASSWORD_FILE": password_file(tmp_path, password)})
    kwargs = connection_kwargs(url["REDIS_URL"])
    assert (kwargs["password"], kwargs["host"], kwargs["port"]) == (password, "::1", 6380)
    assert urlsplit(url["REDIS_URL"]).path == "/1"


def test_a_missing_or_empty_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"REDIS_PASSWORD_FILE .*nothing-here.*No such file"):
        from_env({"REDIS_PASSWORD_FILE": str(tmp_path / "nothing-here")})
    with pytest.raises(ConfigError, match="REDIS_PASSWORD_FILE .* is empty"):
        from_env({"REDIS_PASSWORD_FILE": password_file(tmp_path, " \n")})
    with pytest.raises(ConfigError, match="REDIS_PASSWORD_FILE"):
        from_env({"REDIS_PASSWORD_FILE": str(tmp_path)})  # a directory


def test_the_batch_command_needs_no_password_file(tmp_path: Path) -> None:
    settings = from_env({"REDIS_PASSWORD_FILE": str(tmp_path / "not-made-yet")}, redis=False)
    assert settings["REDIS_URL"] == "redis://localhost:6379/0"


def test_a_password_file_opens_a_real_redis_that_refuses_without_it(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = f"redis://127.0.0.1:{redis_server.port}/0"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(bare).ping()
    monkeypatch.setenv("REDIS_URL", bare)
    monkeypatch.setenv("REDIS_PASSWORD_FILE", password_file(tmp_path, redis_server.password + "\n"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert redis.Redis.from_url(from_env()["REDIS_URL"]).ping()

    # The web: its job store and its rate limiter's storage both authenticate.
    app = create_app({"TESTING": True})
    try:
        assert app.extensions["redis"].ping()
        limiter = app.extensions["limiter"]
        assert limiter.storage.check()
        reply = app.test_client().get("/readyz")
        assert reply.status_code == 200, reply.get_json()
    finally:
        app.extensions["redis"].close()
