"""gunicorn settings for the web process, from the same environment as everything else."""

from imgjobs.config import from_env

_settings = from_env()

bind = f"{_settings['HOST']}:{_settings['PORT']}"
workers = _settings["WEB_CONCURRENCY"]
# Threads let long-polls (?wait=) and slow uploads wait without holding a whole process.
worker_class = "gthread"
threads = _settings["WEB_THREADS"]
# A 25 MB upload over a slow link takes a while; the body is streamed to disk meanwhile.
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Tell the app it is behind nothing by default; set FORWARDED_ALLOW_IPS when behind a proxy.
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    """Refuse to listen beyond loopback without API keys, unless ALLOW_ANONYMOUS=1 says so on purpose."""
    from web.auth import open_bind_problem

    problem = open_bind_problem(server.cfg.address, _settings)
    if problem:
        raise RuntimeError(problem)  # gunicorn prints "Error: <problem>" and exits with status 1
    _sweep_uploads()


def child_exit(server, worker):
    """Delete the partial uploads of a web worker that died or was killed (past graceful_timeout)."""
    _sweep_uploads()


def on_exit(server):
    """Delete the partial uploads of requests cut off by the shutdown, once their killed workers are gone."""
    import os

    try:
        while True:
            os.waitpid(-1, 0)  # gunicorn has sent SIGKILL to any worker still running
    except ChildProcessError:
        pass
    _sweep_uploads()


def _sweep_uploads():
    """Delete upload temp files no live web process owns."""
    from imgjobs import storage
    from web.uploads import sweep_spooled

    sweep_spooled(storage.from_config(_settings))
