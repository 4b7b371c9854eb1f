"""swarm.yaml, live on a single-node Docker Swarm: deploy, upload to result, 1 -> 3 workers, a rolling update.

`make test-swarm` (scripts/test-swarm.sh) runs this. The stack file is deployed as
written, SeaweedFS and the one-shot bucket service included; only the image names
are set (the local stand-in builds: no registry here) and the worker replicas start
at 1. No port is published on the host: HTTP goes from inside a web task to the
`web` service on the overlay network, as another service would. Where the kernel
has no IPVS (this machine), service virtual IPs do not answer, and
swarm.dnsrr.yaml switches every service to DNS round robin.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.docker.stack import (
    NGINX_STANDIN,
    PROXY_IMAGE,
    PYTHON_STANDIN,
    REDIS_STANDIN,
    ROOT,
    WEB_IMAGE,
    WORKER_IMAGE,
    Stack,
    engine_ready,
    report,
    run,
    standin_worker_dockerfile,
)
from tests.services import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm, pytest.mark.timeout(1500)]

SWARM_FILE = ROOT / "swarm.yaml"
#: Services found by DNS round robin, for kernels without IPVS (no virtual IPs then).
DNSRR_OVERRIDE = Path(__file__).resolve().parent / "swarm.dnsrr.yaml"
IPVS = Path("/proc/net/ip_vs").exists()
SEAWEEDFS_STANDIN = os.environ.get("STANDIN_SEAWEEDFS_IMAGE", "imgjobs-standin/seaweedfs:4.48")
STACK_NAME = os.environ.get("SWARM_STACK_NAME", "imgjobs-swarmtest")
#: What the web's own API is reached at, from inside a web task (the service name).
API = "http://proxy:8080"  # the front, as clients reach the stack through swarm.ports.yaml
#: Run inside a web task: one HTTP request, the body from stdin; prints status and body as JSON.
CLIENT = """
import base64, json, sys, urllib.error, urllib.request
method, url, ctype = sys.argv[1:4]
body = sys.stdin.buffer.read() if method == "POST" else None
req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype} if ctype else {})
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        status, data = r.status, r.read()
except urllib.error.HTTPError as e:
    status, data = e.code, e.read()
print(json.dumps({"status": status, "body": base64.b64encode(data).decode()}))
"""


POLL = 2  # seconds between looks at the swarm (each look runs docker or redis-cli)
#: Where swarm.yaml's redis_password secret is, in redis, web and worker tasks.
PASSWORD_SECRET = "/run/secrets/redis_password"


@dataclass
class SwarmStack:
    """One `docker stack deploy` of swarm.yaml, addressed by its stack name."""

    name: str
    workdir: Path
    replicas: dict[str, int] = field(
        default_factory=lambda: {"redis": 1, "seaweedfs": 1, "web": 2, "proxy": 1, "worker": 1})

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            WEB_IMAGE=WEB_IMAGE,
            WORKER_IMAGE=WORKER_IMAGE,
            PROXY_IMAGE=PROXY_IMAGE,
            PROXY_REPLICAS="1",
            REDIS_IMAGE=REDIS_STANDIN,
            SEAWEEDFS_IMAGE=SEAWEEDFS_STANDIN,
            WORKER_REPLICAS="1",
            S3_CREDENTIALS_FILE=str(self.workdir / "s3-credentials"),
            SEAWEEDFS_S3_CONFIG=str(self.workdir / "seaweedfs-s3.json"),
            REDIS_PASSWORD_PATH=str(self.workdir / "redis-password"),
        )
        return env

    def deploy(self) -> None:
        files = ["-c", str(SWARM_FILE)] + ([] if IPVS else ["-c", str(DNSRR_OVERRIDE)])
        run("docker", "stack", "deploy", "--resolve-image", "never", *files, self.name, env=self.env, timeout=300)

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"

    def containers(self, service: str, running: bool = True) -> list[dict[str, Any]]:
        """`docker inspect` of the service's task containers on this node (running ones, or all)."""
        args = ["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.service(service)}"]
        if not running:
            args.insert(2, "-a")
        ids = run(*args).stdout.split()
        if not ids:
            return []
        done = run("docker", "inspect", *ids, check=False)
        return list(json.loads(done.stdout or "[]"))

    def healthy(self, service: str) -> list[str]:
        """Container ids of the service's running tasks that report healthy."""
        return [c["Id"] for c in self.containers(service)
                if c["State"]["Running"] and c["State"].get("Health", {}).get("Status") == "healthy"]

    def wait_healthy(self, service: str, count: int, timeout: float = 240) -> list[str]:
        """Wait until exactly `count` tasks of the service run healthy; return their container ids."""
        def settled() -> list[str] | None:
            running = self.containers(service)
            ids = self.healthy(service)
            return ids if len(ids) == count == len(running) else None
        what = f"{count} healthy {service} task(s)"
        return list(wait_until(settled, timeout, what, POLL, lambda: self.logs(service)))

    def bucket_done(self) -> bool:
        states = run("docker", "service", "ps", "--format", "{{.CurrentState}}", self.service("bucket")).stdout
        return any(line.startswith("Complete") for line in states.splitlines())

    def logs(self, service: str) -> str:
        done = run("docker", "service", "logs", "--no-task-ids", "--tail", "100", self.service(service),
                   check=False, timeout=60)
        ps = run("docker", "service", "ps", "--no-trunc", self.service(service), check=False).stdout
        return f"--- {service} tasks\n{ps}\n--- {service} logs\n{done.stdout[-4000:]}{done.stderr[-4000:]}"

    def redis_cli(self, *args: str) -> str:
        """Run redis-cli in the redis task with the password from its secret (REDISCLI_AUTH, not argv)."""
        [redis] = self.containers("redis")
        login = f'REDISCLI_AUTH="$(cat {PASSWORD_SECRET})" exec redis-cli "$@"'
        return run("docker", "exec", redis["Id"], "sh", "-c", login, "redis-cli", *args).stdout.strip()

    def http(self, method: str, path: str, body: bytes = b"", content_type: str = "") -> tuple[int, bytes]:
        """One request through the front (the proxy service), made from inside a running web task."""
        web = self.healthy("web")
        assert web, "no healthy web task"
        done = subprocess.run(["docker", "exec", "-i", web[0], "python", "-c", CLIENT, method, f"{API}{path}",
                               content_type], input=body, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        reply = json.loads(done.stdout)
        return int(reply["status"]), base64.b64decode(reply["body"])

    def submit(self, data: bytes, ops: list[dict[str, Any]], name: str = "in.png") -> str:
        prepared = requests.Request("POST", f"{API}/api/v1/jobs", files={"file": (name, data)},
                                    data={"ops": json.dumps(ops)}).prepare()
        assert isinstance(prepared.body, bytes)
        status, body = self.http("POST", "/api/v1/jobs", prepared.body, str(prepared.headers["Content-Type"]))
        assert status == 202, body
        return str(json.loads(body)["id"])

    def job(self, job_id: str, wait: int = 0) -> dict[str, Any]:
        status, body = self.http("GET", f"/api/v1/jobs/{job_id}?wait={wait}")
        assert status == 200, body
        return dict(json.loads(body))

    def wait_ended(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            state = self.job(job_id, wait=5)
            return state if state["status"] in {"finished", "failed", "canceled"} else None
        return dict(wait_until(ended, timeout, f"job {job_id} to end", POLL, lambda: self.logs("worker")))

    def remove(self) -> None:
        """Remove the stack, then its leftover volumes (named and the tasks' anonymous ones)."""
        volumes = {m["Name"] for c in self.containers_all() for m in c.get("Mounts", []) if m.get("Type") == "volume"}
        run("docker", "stack", "rm", self.name, check=False, timeout=120)
        label = f"label=com.docker.stack.namespace={self.name}"

        def gone() -> bool:
            left = run("docker", "ps", "-aq", "--filter", label, check=False).stdout.split()
            nets = run("docker", "network", "ls", "-q", "--filter", label, check=False).stdout.split()
            return not left and not nets
        try:
            wait_until(gone, 300, f"stack {self.name} to go", POLL)
        finally:
            volumes |= set(run("docker", "volume", "ls", "-q", "--filter", label, check=False).stdout.split())
            if volumes:
                run("docker", "volume", "rm", *sorted(volumes), check=False, timeout=120)

    def containers_all(self) -> list[dict[str, Any]]:
        ids = run("docker", "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={self.name}",
                  check=False).stdout.split()
        return list(json.loads(run("docker", "inspect", *ids, check=False).stdout or "[]")) if ids else []


def worker_jobs(stack: SwarmStack, ids: list[str]) -> dict[str, int]:
    """How many of `ids` each running worker task's log names."""
    took = {}
    for container in stack.containers("worker"):
        done = run("docker", "logs", container["Id"])
        took[container["Name"]] = sum(job_id in done.stdout + done.stderr for job_id in ids)
    return took


def big_jpeg() -> bytes:
    """A 12 MP JPEG that takes a worker a few seconds to blur."""
    size = (4000, 3000)
    gradient = Image.linear_gradient("L").resize(size)
    buffer = io.BytesIO()
    Image.merge("RGB", [gradient, Image.effect_noise(size, 8), gradient.rotate(180)]).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmStack]:
    """Images built, a swarm joined (initialised only if none), the stack deployed healthy; all undone after."""
    engine_ready()
    for image in (SEAWEEDFS_STANDIN, PYTHON_STANDIN, NGINX_STANDIN):
        if run("docker", "image", "inspect", image, check=False, timeout=30).returncode != 0:
            pytest.fail(f"stand-in image {image} missing: run `make test-swarm` (scripts/test-swarm.sh builds it)")
    workdir = tmp_path_factory.mktemp("swarm")
    (workdir / "Dockerfile.worker").write_text(standin_worker_dockerfile())
    started = time.monotonic()
    Stack(project=f"imgjobs-swarmbuild-{uuid.uuid4().hex[:8]}", workdir=workdir).compose(
        "build", "web", "worker", "proxy", timeout=1200)
    built = time.monotonic()

    secret = uuid.uuid4().hex
    (workdir / "s3-credentials").write_text(
        f"[default]\naws_access_key_id = imgjobs\naws_secret_access_key = {secret}\n")
    (workdir / "seaweedfs-s3.json").write_text(json.dumps({"identities": [{
        "name": "imgjobs", "credentials": [{"accessKey": "imgjobs", "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    password = workdir / "redis-password"
    password.write_text(uuid.uuid4().hex + "\n")
    password.chmod(0o600)

    state = run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    initialised = state == "inactive"
    if initialised:
        run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1", timeout=120)
    elif state != "active":
        pytest.fail(f"this engine's swarm state is {state!r}; want inactive (the test makes one) or active")
    stack = SwarmStack(name=STACK_NAME, workdir=workdir)
    if run("docker", "stack", "ps", stack.name, check=False).returncode == 0:
        pytest.fail(f"a stack named {stack.name} already runs: not ours to replace")
    try:
        stack.deploy()
        for service, count in stack.replicas.items():
            stack.wait_healthy(service, count)
        wait_until(stack.bucket_done, 180, "the bucket service to complete", POLL, lambda: stack.logs("bucket"))
        report(f"swarm stack {stack.name}: images built in {built - started:.0f} s, "
               f"healthy {time.monotonic() - built:.0f} s later ({'own' if initialised else 'existing'} swarm, "
               f"{'virtual IPs' if IPVS else 'no IPVS here: swarm.dnsrr.yaml, DNS round robin'})")
        yield stack
    finally:
        try:
            stack.remove()
        finally:
            if initialised:
                run("docker", "swarm", "leave", "--force", check=False, timeout=120)


def test_every_service_runs_healthy_from_the_stack_file(swarm: SwarmStack) -> None:
    listed = run("docker", "stack", "services", "--format", "{{.Name}} {{.Replicas}}", swarm.name).stdout
    replicas = dict(line.split() for line in listed.splitlines())
    assert sorted(replicas) == sorted(swarm.service(s) for s in ("bucket", "redis", "seaweedfs", "web", "proxy",
                                                                  "worker"))
    for service, count in swarm.replicas.items():
        assert replicas[swarm.service(service)] == f"{count}/{count}", listed
    assert swarm.bucket_done()
    [worker] = swarm.containers("worker")
    assert worker["Config"]["Image"] == WORKER_IMAGE
    assert worker["HostConfig"]["ReadonlyRootfs"] is True
    assert len(set(swarm.redis_cli("--scan", "--pattern", "rq:worker:*").split())) == 1


def test_the_stacks_redis_refuses_a_client_without_the_password(swarm: SwarmStack) -> None:
    [redis] = swarm.containers("redis")
    refused = run("docker", "exec", redis["Id"], "redis-cli", "set", "imgjobs:intruder", "1", check=False)
    assert "NOAUTH" in refused.stdout + refused.stderr
    # Over the overlay network, from another task's container, as any client there would.
    web = swarm.healthy("web")[0]
    client = "import redis; redis.Redis(host='redis', socket_timeout=5).lpush('rq:queue:images', 'x')"
    done = run("docker", "exec", web, "python", "-c", client, check=False)
    assert done.returncode != 0 and "AuthenticationError" in done.stderr, done.stderr[-2000:]
    assert swarm.redis_cli("exists", "imgjobs:intruder") == "0"
    assert "x" not in swarm.redis_cli("lrange", "rq:queue:images", "0", "-1").split()
    password = (swarm.workdir / "redis-password").read_text().strip()
    for task in (redis, *swarm.containers("web"), *swarm.containers("worker")):
        assert password not in json.dumps([task["Config"]["Cmd"], task["Config"]["Env"], task["Args"]]), task["Name"]
    # The secret as each reader gets it: its own user's, mode 0400.
    owner = run("docker", "exec", web, "stat", "-c", "%u %a", PASSWORD_SECRET).stdout.split()
    assert owner == ["10001", "400"]


def test_upload_to_result_through_the_bucket(swarm: SwarmStack) -> None:
    gradient = Image.linear_gradient("L").resize((640, 480))
    buffer = io.BytesIO()
    Image.merge("RGB", [gradient, gradient.rotate(90), Image.new("L", (640, 480), 90)]).save(buffer, "PNG")
    job_id = swarm.submit(buffer.getvalue(), [{"op": "resize", "width": 256}, {"op": "grayscale"}])
    state = swarm.wait_ended(job_id, timeout=120)
    assert state["status"] == "finished", (state, swarm.logs("worker"))

    status, body = swarm.http("GET", f"/api/v1/jobs/{job_id}/result")
    assert status == 200, body[:500]
    image = Image.open(io.BytesIO(body))
    assert image.size == (256, 192) and image.mode == "L"
    # Web and worker share no volume: the result came to the web through the bucket.
    def volumes(service: str) -> set[str]:
        return {m["Name"] for c in swarm.containers(service) for m in c["Mounts"] if m["Type"] == "volume"}
    web, worker = volumes("web"), volumes("worker")
    assert web and worker and not web & worker, (web, worker)


def test_scaled_to_three_workers_all_take_jobs(swarm: SwarmStack) -> None:
    run("docker", "service", "scale", "--detach", f"{swarm.service('worker')}=3")
    swarm.wait_healthy("worker", 3)
    wait_until(lambda: len(set(swarm.redis_cli("--scan", "--pattern", "rq:worker:*").split())) == 3, 120,
               "three workers registered in Redis", POLL)

    data = big_jpeg()
    ids = [swarm.submit(data, [{"op": "blur", "radius": 20}] * 2, "big.jpg") for _ in range(9)]
    for job_id in ids:
        assert swarm.wait_ended(job_id, timeout=300)["status"] == "finished"
    took = worker_jobs(swarm, ids)
    assert len(took) == 3 and all(took.values()), took
    report(f"swarm: 9 jobs over 3 workers: {sorted(took.values())}")


def test_rolling_update_of_the_workers_loses_no_job(swarm: SwarmStack) -> None:
    before = set(swarm.wait_healthy("worker", 3))
    data = big_jpeg()
    ids = [swarm.submit(data, [{"op": "blur", "radius": 20}] * 3, "big.jpg") for _ in range(6)]
    wait_until(lambda: any(swarm.job(i)["status"] == "started" for i in ids), 120, "a job to start", POLL)
    run("docker", "service", "update", "--detach", "--force", swarm.service("worker"), timeout=120)
    # More jobs while the update goes on, one task at a time.
    ids += [swarm.submit(data, [{"op": "blur", "radius": 20}] * 3, "big.jpg") for _ in range(3)]

    def updated() -> bool:
        status = json.loads(run("docker", "service", "inspect", swarm.service("worker")).stdout)[0]
        return status.get("UpdateStatus", {}).get("State") == "completed"
    wait_until(updated, 900, "the worker update to complete", POLL, lambda: swarm.logs("worker"))
    after = set(swarm.wait_healthy("worker", 3))
    assert not before & after, (before, after)

    states = {job_id: swarm.wait_ended(job_id, timeout=300)["status"] for job_id in ids}
    assert set(states.values()) == {"finished"}, states
    # Every old task left by a warm shutdown (exit 0), not killed at the grace period's end.
    old = [c for c in swarm.containers("worker", running=False) if c["Id"] in before]
    assert len(old) == 3 and all(c["State"]["ExitCode"] == 0 for c in old), [
        (c["Name"], c["State"]["ExitCode"]) for c in old]
