"""gunicorn settings for the web process, from the same environment as everything else."""

from imgjobs.config import from_env

_settings = from_env()

bind = f"{_settings['HOST']}:{_settings['PORT']}"
workers = _settings["WEB_CONCURRENCY"]
# Threads let long-polls (?wait=) and slow uploads wait without holding a whole process.
worker_class = "gthread"
threads = _settings["WEB_THREADS"]
# A 25 MB upload over a slow link takes a while; the body is streamed to disk meanwhile.
# (Behind the nginx front, compose's and `make dev`'s, bodies arrive whole and fast.)
timeout = 120
# On a stop, requests in flight get this long: the longest, a 30 s ?wait= long-poll, plus a
# buffered upload handed over by the front. compose.yaml's stop_grace_period for web is longer.
graceful_timeout = 40
# Above nginx's 4 KB header buffers, so a long request line or header is refused by the
# front in the API's JSON rather than here in plain text.
limit_request_line = 8190
keepalive = 5
accesslog = "-"
errorlog = "-"
# The proxies whose X-Forwarded-* headers count (the nginx front); web/clients.py reads the same setting.
forwarded_allow_ips = _settings["FORWARDED_ALLOW_IPS"]


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
