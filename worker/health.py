"""`python -m worker.health`: exit 0 only if a worker on this host is registered and alive."""

from __future__ import annotations

import socket
import sys

import redis
from rq import Worker

from imgjobs import config


def alive_here(connection: redis.Redis, hostname: str) -> list[str]:
    """Return the names of registered workers on `hostname` whose heartbeat has not expired."""
    return [w.name for w in Worker.all(connection=connection) if w.hostname == hostname]


def main() -> int:
    """Check this host's worker and say what was found."""
    settings = config.from_env()
    try:
        names = alive_here(redis.Redis.from_url(settings["REDIS_URL"], socket_connect_timeout=2), socket.gethostname())
    except redis.RedisError as exc:
        print(f"unhealthy: redis unreachable: {exc}")
        return 1
    print(f"healthy: {', '.join(names)}" if names else "unhealthy: no live worker registered on this host")
    return 0 if names else 1


if __name__ == "__main__":
    sys.exit(main())
