"""The real compose stack, live: upload to result through the containers, scaling, stopping, durability."""

from __future__ import annotations

import io
import json
import secrets
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.docker.stack import (
    COMPOSE_FILE,
    PASSWORD_FILE,
    PYTHON_STANDIN,
    REDIS_STANDIN,
    ROOT,
    STANDIN_OVERRIDE,
    WEB_IMAGE,
    WORKER_IMAGE,
    Stack,
    engine_ready,
    report,
    run,
    tool,
)
from tests.services import SlowUploads

# Building from a cold cache takes minutes, and the session fixture's setup counts
# against the first test that uses it.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

#: Steps that keep one worker busy for several seconds on SLOW_SIZE (about 6 s on 2 cores).
SLOW_SIZE = (4000, 3000)
SLOW_OPS = [{"op": "blur", "radius": 40}] * 10
ENDED = {"finished", "failed", "canceled"}


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    """Return the image encoded in `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def small_png() -> bytes:
    """Return a 640x480 gradient PNG."""
    gradient = Image.linear_gradient("L").resize((640, 480))
    return encode(Image.merge("RGB", [gradient, gradient.rotate(90), Image.new("L", (640, 480), 90)]))


def big_jpeg() -> bytes:
    """Return a 12 MP JPEG (a few MB: smooth, with a little noise) that takes real work to filter."""
    gradient = Image.linear_gradient("L").resize(SLOW_SIZE)
    noise = Image.effect_noise(SLOW_SIZE, 8)
    return encode(Image.merge("RGB", [gradient, noise, gradient.transpose(Image.Transpose.ROTATE_180)]), "JPEG")


def submit(stack: Stack, data: bytes, ops: list[dict[str, Any]], name: str = "in.png") -> str:
    """Upload an image with its steps and return the new job's id."""
    reply = requests.post(f"{stack.url}/api/v1/jobs", files={"file": (name, data)},
                          data={"ops": json.dumps(ops)}, timeout=60)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def job(stack: Stack, job_id: str, wait: float = 0) -> dict[str, Any]:
    """Return the job as the API shows it, long-polling up to `wait` seconds."""
    reply = requests.get(f"{stack.url}/api/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 30)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def wait_for(stack: Stack, job_id: str, statuses: set[str], timeout: float = 120) -> dict[str, Any]:
    """Poll until the job reaches one of `statuses`; fail with the worker logs otherwise.

    The API's long poll returns when a job ends, so it serves only for end states.
    """
    long_poll = statuses <= ENDED
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        wait = min(5.0, max(0.0, deadline - time.monotonic())) if long_poll else 0
        state = job(stack, job_id, wait=wait)
        if state["status"] in statuses:
            return state
        time.sleep(0 if long_poll else 0.1)
    pytest.fail(f"job {job_id} never reached {statuses}: {state}\n{stack.logs('worker')}")


def inspect(stack: Stack, service: str) -> list[dict[str, Any]]:
    """Return `docker inspect` of the service's containers, or fail if none runs."""
    found = stack.containers(service)
    assert found, f"no {service} container"
    return found


def test_every_service_is_healthy_and_hardened(stack: Stack) -> None:
    for service in ("redis", "web", "proxy", "worker"):
        for container in inspect(stack, service):
            name, host = container["Name"], container["HostConfig"]
            assert container["State"]["Health"]["Status"] == "healthy", name
            assert container["Config"]["User"] not in ("", "0", "root"), name
            assert host["ReadonlyRootfs"] is True, name
            assert host["CapDrop"] == ["ALL"], name
            assert "no-new-privileges:true" in host["SecurityOpt"], name
            assert host["Memory"] > 0 and host["PidsLimit"] > 0, name
            assert host["RestartPolicy"]["Name"] == "unless-stopped", name
            assert "/tmp" in host["Tmpfs"], name
    for private in ("redis", "web"):
        assert not inspect(stack, private)[0]["HostConfig"]["PortBindings"], private
    [binding] = inspect(stack, "proxy")[0]["HostConfig"]["PortBindings"]["8080/tcp"]
    assert binding == {"HostIp": "127.0.0.1", "HostPort": str(stack.port)}
    assert stack.compose("exec", "-T", "proxy", "id", "-u").stdout.strip() == "101"
    assert stack.compose("exec", "-T", "web", "id", "-u").stdout.strip() == "10001"
    assert stack.compose("exec", "-T", "worker", "id", "-u").stdout.strip() == "10001"
    readonly = stack.compose("exec", "-T", "web", "touch", "/app/x", check=False)
    assert readonly.returncode != 0 and "Read-only file system" in readonly.stderr


def test_health_endpoints_answer_on_loopback(stack: Stack) -> None:
    assert requests.get(f"{stack.url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{stack.url}/readyz", timeout=10).status_code == 200


def test_slow_clients_do_not_hold_up_the_stack(stack: Stack) -> None:
    slow = SlowUploads(stack.port, 64)  # four times the web's 2 x 8 threads
    try:
        time.sleep(2)
        job_id = submit(stack, small_png(), [{"op": "grayscale"}])
        assert wait_for(stack, job_id, {"finished", "failed"}, timeout=60)["status"] == "finished"
        assert slow.answered() == 0  # every slow upload is still coming in
    finally:
        slow.close()


def test_the_front_answers_in_json_and_keeps_the_apis_limit(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:  # announce 26 MB, send none
        sock.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (26 * 2**20))
        head, body = sock.recv(65536).decode().split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 413") and "Server: nginx" in head
    assert json.loads(body)["error"]["message"] == "The upload is larger than the limit of 25 MB."
    long_header = requests.get(f"{stack.url}/healthz", headers={"X-Big": "a" * 5000}, timeout=10)
    assert long_header.status_code == 400 and long_header.json()["error"]["code"] == "bad_request"


def test_upload_to_result_through_the_containers(stack: Stack) -> None:
    job_id = submit(stack, small_png(), [{"op": "resize", "width": 256}, {"op": "grayscale"}])
    state = wait_for(stack, job_id, {"finished", "failed"}, timeout=60)
    assert state["status"] == "finished", state

    reply = requests.get(f"{stack.url}/api/v1/jobs/{job_id}/result", timeout=30)
    assert reply.status_code == 200
    image = Image.open(io.BytesIO(reply.content))
    assert image.size == (256, 192) and image.mode == "L"

    # The worker wrote the file; the web container reads it from the same volume.
    path = f"/data/results/{job_id}.png"
    for service in ("worker", "web"):
        listed = stack.compose("exec", "-T", service, "stat", "-c", "%u:%g %s", path).stdout.split()
        assert listed == ["10001:10001", str(len(reply.content))], service


def test_two_workers_both_take_jobs(stack: Stack) -> None:
    stack.compose("up", "--detach", "--wait", "--wait-timeout", "120", "--scale", "worker=2")
    stack.wait_healthy("worker", 2)
    assert len(set(stack.redis_cli("--scan", "--pattern", "rq:worker:*").split())) >= 2

    data = big_jpeg()
    ids = [submit(stack, data, [{"op": "blur", "radius": 20}] * 2, "big.jpg") for _ in range(6)]
    for job_id in ids:
        assert wait_for(stack, job_id, {"finished", "failed"}, timeout=180)["status"] == "finished"

    took = {}
    for container in inspect(stack, "worker"):
        done = run("docker", "logs", container["Id"])
        logs = done.stdout + done.stderr
        took[container["Name"]] = sum(job_id in logs for job_id in ids)
    assert len(took) == 2 and all(took.values()), took


def test_stop_lets_the_running_job_finish(stack: Stack) -> None:
    stack.compose("up", "--detach", "--wait", "--wait-timeout", "120", "--scale", "worker=1")
    stack.wait_healthy("worker", 1)
    [worker] = inspect(stack, "worker")

    job_id = submit(stack, big_jpeg(), SLOW_OPS, "big.jpg")
    wait_for(stack, job_id, {"started"}, timeout=60)
    started = time.monotonic()
    stack.compose("stop", "worker", timeout=300)
    stopped_after = time.monotonic() - started

    state = job(stack, job_id)
    assert state["status"] == "finished", (state, stack.logs("worker"))
    exit_code = json.loads(run("docker", "inspect", worker["Id"]).stdout)[0]["State"]["ExitCode"]
    assert exit_code == 0, f"worker exited {exit_code} after {stopped_after:.1f} s (137 means it was killed)"
    report(f"compose stop worker: returned after {stopped_after:.1f} s, once the running job had finished")
    result = f"/data/results/{job_id}.{state['result']['format']}"
    assert stack.compose("exec", "-T", "web", "test", "-s", result, check=False).returncode == 0, result

    stack.compose("up", "--detach", "--wait", "--wait-timeout", "120", "worker")


def test_redis_restart_keeps_queued_jobs(stack: Stack) -> None:
    assert "aof_enabled:1" in stack.redis_cli("info", "persistence")
    stack.compose("stop", "worker", timeout=300)
    job_id = submit(stack, small_png(), [{"op": "grayscale"}])
    assert job(stack, job_id)["status"] == "queued"

    # appendfsync everysec: after a second the job is on disk. SIGKILL skips
    # Redis's shutdown save, so only the append-only file can bring it back.
    time.sleep(2)
    stack.compose("kill", "-s", "SIGKILL", "redis")
    stack.compose("up", "--detach", "--wait", "--wait-timeout", "120", "redis")
    assert job(stack, job_id)["status"] == "queued"

    stack.compose("up", "--detach", "--wait", "--wait-timeout", "120", "worker")
    assert wait_for(stack, job_id, {"finished", "failed"}, timeout=60)["status"] == "finished"


def intruder(stack: Stack, *command: str, image: str = REDIS_STANDIN, env: tuple[str, ...] = ()) -> str:
    """Run `command` in a throwaway container on the stack's network, as any other container there could."""
    flags = [arg for name in env for arg in ("--env", name)]
    done = run("docker", "run", "--rm", "--network", stack.network(), "--read-only", *flags, image, *command,
               check=False, timeout=120)
    return done.stdout + done.stderr


def test_redis_refuses_a_container_without_the_password(stack: Stack) -> None:
    password = stack.password()
    assert len(password) == 32 and int(password, 16) >= 0  # drawn from /dev/urandom: no REDIS_PASSWORD here
    assert "NOAUTH" in intruder(stack, "redis-cli", "-h", "redis", "set", "imgjobs:intruder", "1")
    assert "NOAUTH" in intruder(stack, "redis-cli", "-h", "redis", "lpush", "rq:queue:images", "x")
    wrong = intruder(stack, "redis-cli", "-h", "redis", "ping", env=("REDISCLI_AUTH=not-the-password",))
    assert "WRONGPASS" in wrong or "invalid password" in wrong, wrong
    client = "import redis; redis.Redis(host='redis', socket_timeout=5).ping()"
    assert "AuthenticationError" in intruder(stack, "python", "-c", client, image=WEB_IMAGE)
    assert stack.redis_cli("exists", "imgjobs:intruder") == "0"
    assert "x" not in stack.redis_cli("lrange", "rq:queue:images", "0", "-1").split()
    # The same container with the password gets in: it was refused for the password, not the network.
    assert intruder(stack, "redis-cli", "-h", "redis", "ping", env=(f"REDISCLI_AUTH={password}",)).strip() == "PONG"

    # Never on a command line or in an environment: only in the volume, readable by the app's group.
    for service in ("redis", "web", "worker"):
        for container in inspect(stack, service):
            shown = json.dumps([container["Config"]["Cmd"], container["Config"]["Env"], container["Args"]])
            assert password not in shown, service
    owner = stack.compose("exec", "-T", "web", "stat", "-c", "%u:%g %a", PASSWORD_FILE).stdout.split()
    assert owner == ["999:10001", "440"]
    assert stack.compose("exec", "-T", "worker", "cat", "/run/redis-auth/redis.conf", check=False).returncode != 0

    job_id = submit(stack, small_png(), [{"op": "resize", "width": 100}])
    assert wait_for(stack, job_id, {"finished", "failed"}, timeout=60)["status"] == "finished"


def test_the_redis_password_survives_a_restart_of_the_stack(stack: Stack) -> None:
    password = stack.password()
    job_id = submit(stack, small_png(), [{"op": "grayscale"}])
    assert wait_for(stack, job_id, {"finished", "failed"}, timeout=60)["status"] == "finished"
    time.sleep(2)  # appendfsync everysec: the finished job is on disk

    stack.compose("down", "--timeout", "30", timeout=300)  # containers and network gone, volumes kept
    up = stack.compose("up", "--detach", "--wait", "--wait-timeout", "180", check=False, timeout=300)
    assert up.returncode == 0, f"{up.stderr[-3000:]}\n{stack.logs()}"
    assert "keeping the password made before" in stack.logs("redis-auth")
    assert stack.password() == password
    assert job(stack, job_id)["status"] == "finished"  # the old data, read with the same password
    again = submit(stack, small_png(), [{"op": "grayscale"}])
    assert wait_for(stack, again, {"finished", "failed"}, timeout=60)["status"] == "finished"


def test_redis_password_from_the_environment_wins_and_is_checked(tmp_path: Path) -> None:
    engine_ready()
    own = Stack(project=f"imgjobs-test-auth-{uuid.uuid4().hex[:8]}", workdir=tmp_path)

    def up(password: str) -> subprocess.CompletedProcess[str]:
        env = {**own.env, "REDIS_PASSWORD": password}
        return run(tool("docker-compose"), "-p", own.project, "-f", str(COMPOSE_FILE), "-f", str(STANDIN_OVERRIDE),
                   "up", "--detach", "--wait", "--wait-timeout", "60", "--force-recreate", "redis",
                   check=False, env=env, timeout=300)

    def ping(password: str) -> str:
        login = ("exec", "-T", "--env", f"REDISCLI_AUTH={password}", "redis")
        done = own.compose(*login, "redis-cli", "ping", check=False)
        return done.stdout + done.stderr

    try:
        first, second = "given-by/the+operator=1", "rotated.by_the~operator-2"
        assert up(first).returncode == 0, own.logs()
        assert own.compose("exec", "-T", "redis", "cat", PASSWORD_FILE).stdout.strip() == first
        assert ping(first).strip() == "PONG"
        assert up(second).returncode == 0, own.logs()  # a changed REDIS_PASSWORD replaces the stored one
        assert ping(second).strip() == "PONG" and "PONG" not in ping(first)
        refused = up('two words"')
        assert refused.returncode != 0
        assert "REDIS_PASSWORD may hold only" in own.logs("redis-auth")
    finally:
        own.compose("down", "--volumes", "--timeout", "10", check=False, timeout=300)


def test_image_sizes(stack: Stack) -> None:
    def size(image: str) -> int:
        return int(run("docker", "image", "inspect", "--format", "{{.Size}}", image).stdout)

    web, base, worker = size(WEB_IMAGE), size(PYTHON_STANDIN), size(WORKER_IMAGE)
    mb = 1_000_000
    report(f"web image {WEB_IMAGE}: {web / mb:.0f} MB, {(web - base) / mb:.0f} MB over its base {PYTHON_STANDIN}")
    report(f"worker image {WORKER_IMAGE} (stand-in env, not conda): {worker / mb:.0f} MB, "
           f"{(worker - base) / mb:.0f} MB over {PYTHON_STANDIN}")
    assert web - base < 150 * mb, "the web layers grew past 150 MB: check what the lock pulls in"


def test_compose_keys_yaml_turns_keys_on(stack: Stack, tmp_path: Path) -> None:
    key, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    keys = tmp_path / "api-keys"
    keys.write_text(f"ci {key}\n")
    keys.chmod(0o644)  # the web runs as APP_UID, not as the file's owner
    files = ["-f", str(COMPOSE_FILE), "-f", str(STANDIN_OVERRIDE), "-f", str(ROOT / "compose.keys.yaml")]
    env = {**stack.env, "API_KEYS_PATH": str(keys)}
    run(tool("docker-compose"), "-p", stack.project, *files, "up", "--detach", "--wait", "--wait-timeout", "120",
        "web", env=env, timeout=300)
    try:
        assert requests.get(f"{stack.url}/api/v1/ops", timeout=10).status_code == 401
        signed_in = {"Authorization": f"Bearer {key}"}
        reply = requests.post(f"{stack.url}/api/v1/jobs", files={"file": ("in.png", small_png())}, headers=signed_in,
                              data={"ops": json.dumps([{"op": "resize", "width": 64}])}, timeout=60)
        assert reply.status_code == 202, reply.text
        url = f"{stack.url}/api/v1/jobs/{reply.json()['id']}"
        done = requests.get(url, params={"wait": 30}, headers=signed_in, timeout=60).json()
        assert done["status"] == "finished", done
        shared = requests.get(stack.url + done["links"]["share"], timeout=10)
        assert shared.status_code == 200 and Image.open(io.BytesIO(shared.content)).size == (64, 48)
        keys.write_text(f"ci2 {other}\n")  # edited in place: the secret's bind mount sees it
        assert requests.get(url, headers=signed_in, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=10).status_code == 404
    finally:
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "120", "web")  # back to compose.yaml alone
