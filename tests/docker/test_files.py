"""Static checks of the container files: compose config, hadolint, environment.yml against the code."""

from __future__ import annotations

import ast
import json
import os
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from imgjobs import config
from tests.docker.stack import COMPOSE_FILE, ROOT, run, standin_worker_dockerfile, tool
from web import api
from worker import service as worker_service

pytestmark = pytest.mark.docker

#: Import name -> package in environment.yml (conda-forge or, in its pip: section, PyPI), for
#: every third-party module the worker may import.
ENV_PACKAGE = {
    "numpy": "numpy", "PIL": "pillow", "redis": "redis", "rq": "rq", "boto3": "boto3", "botocore": "botocore",
    "click": "click", "rich": "rich",
}
#: What the conda section holds beyond requirements/worker.txt: the interpreter and pip itself.
CONDA_ONLY = {"python", "pip"}
#: conda-forge name -> PyPI name where they differ.
PYPI_NAME = {"redis-py": "redis"}
#: Settings compose passes to web and worker with its own defaults (x-app-env).
APP_ENV = ("QUEUE_NAME", "MAX_UPLOAD_MB", "MAX_PIXELS", "MAX_STEPS", "JOB_TIMEOUT", "RESULT_TTL",
           "FAILURE_TTL", "JOB_RETRIES")


def compose(*args: str) -> str:
    """Run `docker-compose` on the real compose.yaml as a new user would: no .env, no settings."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return run(tool("docker-compose"), "--env-file", "/dev/null", "-f", str(COMPOSE_FILE), *args, env=clean).stdout


def compose_config(*args: str) -> dict[str, Any]:
    """Return the resolved config of the real compose.yaml as JSON."""
    return dict(json.loads(compose(*args, "config", "--format", "json")))


def read_environment() -> dict[str, Any]:
    """Parse environment.yml, which keeps to a flat shape: scalars, lists of scalars, one pip: list."""
    sections: dict[str, Any] = {}
    key = None
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.startswith("#") else ""
        if not line:
            continue
        if not line.startswith(" "):
            key, _, value = line.partition(":")
            sections[key] = value.strip() or []
        elif line == "  - pip:" and key == "dependencies":
            key = "pip"
            sections[key] = []
        else:
            item = line.strip()
            assert item.startswith("- ") and key, f"environment.yml: unexpected line {raw!r}"
            assert isinstance(sections[key], list), f"environment.yml: {key} mixes a value and a list"
            sections[key].append(item[2:].strip())
    return sections


def conda_pins() -> dict[str, str]:
    """Return environment.yml's conda dependencies as name -> exact version."""
    pins = {}
    for dep in read_environment()["dependencies"]:
        match = re.fullmatch(r"([a-z0-9][a-z0-9._-]*)=(\d[\w.]*)", dep)
        assert match, f"environment.yml: {dep!r} is not an exact `name=version` pin"
        pins[match[1]] = match[2]
    return pins


def pip_pins() -> dict[str, str]:
    """Return environment.yml's pip: section as PyPI name -> its requirement line."""
    lines = [line for line in read_environment().get("pip", []) if not line.startswith("--")]
    return {re.split(r"[=;\s]", line, maxsplit=1)[0].lower(): line for line in lines}


def lock_lines(name: str) -> dict[str, str]:
    """Return `requirements/<name>.txt` as package -> its requirement on one line, hashes included."""
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    text = re.sub(r" *\\\n *", " ", re.sub(r"^ *#.*\n", "", text, flags=re.M))
    return {re.split(r"[=;\s]", line, maxsplit=1)[0].lower(): line.strip() for line in text.splitlines() if line}


def lock_pins(name: str) -> dict[str, str]:
    """Return `requirements/<name>.txt` as package -> version."""
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==([^\s;]+)", text, re.M)}


def third_party_imports(*packages: str) -> set[str]:
    """Return the top-level names the given packages import, less stdlib and themselves."""
    local = {"imgjobs", "worker", "web", "tests"}
    names: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - local - {"__future__"}


def dockerfile_arg(path: str, name: str) -> str:
    """Return the default of a build arg in a Dockerfile."""
    match = re.search(rf"^ARG {name}=(\S+)$", (ROOT / path).read_text(), re.M)
    assert match, f"{path} has no `ARG {name}=...`"
    return match[1]


def seconds(duration: str) -> float:
    """Turn a compose duration like `2m30s` or `150s` into seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# -- compose.yaml ----------------------------------------------------------------------------

def test_compose_config_is_valid() -> None:
    compose("config", "--quiet")


def test_compose_has_no_version_key() -> None:
    assert not re.search(r"^version\s*:", COMPOSE_FILE.read_text(), re.M)


def test_every_service_is_hardened() -> None:
    services = compose_config()["services"]
    assert set(services) == {"redis-auth", "redis", "web", "proxy", "worker"}
    for name, service in services.items():
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("0", "root"), f"{name} runs as {user!r}"
        assert service.get("read_only") is True, name
        assert any(t.startswith("/tmp") for t in service.get("tmpfs", [])), name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert int(service.get("mem_limit", 0)) > 0, name
        assert int(service.get("pids_limit", 0)) > 0, name
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_web_and_worker_share_one_uid_and_the_data_volume() -> None:
    services = compose_config()["services"]
    assert services["web"]["user"] == services["worker"]["user"]
    for name in ("web", "worker"):
        mounts = {(v["source"], v["target"]) for v in services[name]["volumes"]}
        assert ("data", "/data") in mounts, name
        assert services[name]["environment"]["DATA_DIR"] == "/data"


def test_redis_is_pinned_durable_private_and_checked() -> None:
    redis = compose_config()["services"]["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-\w+", redis["image"]), redis["image"]
    command = " ".join(redis["command"])
    for setting in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert setting in command
    assert not redis.get("ports"), "redis must not be published to the host"
    assert [v["source"] for v in redis["volumes"]] == ["redis-data", "redis-auth"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_redis_needs_the_password_the_one_shot_makes() -> None:
    services = compose_config()["services"]
    redis, auth = services["redis"], services["redis-auth"]
    assert redis["command"][:2] == ["redis-server", "/run/redis-auth/redis.conf"]  # requirepass, not in argv
    assert redis["depends_on"]["redis-auth"]["condition"] == "service_completed_successfully"
    assert "REDISCLI_AUTH=" in " ".join(redis["healthcheck"]["test"])
    assert auth["image"] == redis["image"] and auth["network_mode"] == "none"
    assert auth["user"] == f"{redis['user'].split(':')[0]}:{services['web']['user'].split(':')[1]}"
    assert [(v["source"], v["target"]) for v in auth["volumes"]] == [("redis-auth", "/data")]
    assert auth["environment"]["REDIS_PASSWORD"] == ""  # none given: drawn from /dev/urandom
    assert "/dev/urandom" in auth["command"][-1]
    for name in ("redis", "web", "worker"):
        mounts = {v["source"]: v for v in services[name]["volumes"]}
        assert mounts["redis-auth"]["target"] == "/run/redis-auth" and mounts["redis-auth"]["read_only"], name
    for name in ("web", "worker"):
        assert services[name]["environment"]["REDIS_PASSWORD_FILE"] == "/run/redis-auth/password"
        assert "password" not in services[name]["environment"]["REDIS_URL"]


def test_the_front_publishes_a_configurable_port_and_the_web_checks_readiness() -> None:
    assert "${WEB_PORT:-5000}:8080" in COMPOSE_FILE.read_text()
    services = compose_config()["services"]
    web, proxy = services["web"], services["proxy"]
    assert not web.get("ports"), "only the front is published"
    assert [(p["target"], p["published"]) for p in proxy["ports"]] == [(8080, "5000")]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert proxy["build"]["dockerfile"] == "Dockerfile.proxy"
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert web["build"]["dockerfile"] == "Dockerfile.web"


def test_stops_wait_for_the_longest_request_at_each_layer() -> None:
    """nginx's and gunicorn's graceful stops cover a full ?wait=; compose waits longer than each."""
    services = compose_config()["services"]
    nginx = re.search(r"worker_shutdown_timeout (\d+)s;", (ROOT / "deploy/nginx/imgjobs.conf.template").read_text())
    assert nginx and int(nginx[1]) > api.MAX_WAIT
    graceful = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["graceful_timeout"]
    assert graceful > api.MAX_WAIT
    assert seconds(services["proxy"]["stop_grace_period"]) > int(nginx[1])
    assert seconds(services["web"]["stop_grace_period"]) > graceful


def test_compose_serves_without_keys_on_loopback_and_with_keys_from_a_secret(tmp_path: Path) -> None:
    services = compose_config()["services"]
    web = services["web"]
    assert [p["host_ip"] for p in services["proxy"]["ports"]] == ["127.0.0.1"]
    assert web["environment"]["HOST"] == "0.0.0.0" and web["environment"]["ALLOW_ANONYMOUS"] == "1"
    keys = tmp_path / "api-keys"
    keys.write_text("alice " + "k" * 32 + "\n")
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "API_KEYS_PATH": str(keys)}
    both = run(tool("docker-compose"), "--env-file", "/dev/null", "-f", str(COMPOSE_FILE),
               "-f", str(ROOT / "compose.keys.yaml"), "config", "--format", "json", env=clean).stdout
    config = json.loads(both)
    web = config["services"]["web"]
    assert web["environment"]["API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert web["environment"]["REDIS_PASSWORD_FILE"] == "/run/redis-auth/password"
    assert "redis-auth" in {v["source"] for v in web["volumes"]}
    assert web["environment"]["ALLOW_ANONYMOUS"] == "0"
    assert [s["source"] for s in web["secrets"]] == ["api_keys"]
    assert config["secrets"]["api_keys"]["file"] == str(keys)


def test_worker_scales_and_outlives_its_job_timeout() -> None:
    worker = compose_config()["services"]["worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "worker.health"]
    longest_job = int(worker["environment"]["JOB_TIMEOUT"]) + getattr(worker_service, "HARD_LIMIT_GRACE", 0)
    assert seconds(worker["stop_grace_period"]) > longest_job
    assert worker["build"]["dockerfile"] == "Dockerfile.worker"


def test_compose_defaults_match_the_app_defaults() -> None:
    environment = compose_config()["services"]["worker"]["environment"]
    for name in APP_ENV:
        kind, default = config.SETTINGS[name]
        assert kind(environment[name]) == default, name


def test_env_example_documents_every_variable() -> None:
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    used |= set(re.findall(r"^\s+- ([A-Z][A-Z0-9_]*)$", text, re.M))  # build args passed through
    used |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]*):$", text, re.M))  # env passed through
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - documented == set()


# -- Dockerfiles ------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", ["Dockerfile.web", "Dockerfile.worker", "Dockerfile.proxy"])
def test_hadolint_is_clean(dockerfile: str) -> None:
    run(tool("hadolint"), "--no-color", "--failure-threshold", "info", str(ROOT / dockerfile))


def test_hadolint_is_clean_on_the_standin_worker(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile.worker"
    path.write_text(standin_worker_dockerfile())
    run(tool("hadolint"), "--no-color", "--failure-threshold", "info", str(path))


@pytest.mark.parametrize("dockerfile,arg", [
    ("Dockerfile.web", "PYTHON_IMAGE"),
    ("Dockerfile.proxy", "NGINX_IMAGE"),
    ("Dockerfile.worker", "CONDA_IMAGE"),
    ("Dockerfile.worker", "RUNTIME_IMAGE"),
])
def test_base_images_are_pinned(dockerfile: str, arg: str) -> None:
    image = dockerfile_arg(dockerfile, arg)
    assert re.search(r":[\w.-]*\d[\w.-]*$", image) and "latest" not in image, image


def test_runtime_stage_has_no_conda() -> None:
    text = (ROOT / "Dockerfile.worker").read_text()
    runtime = text[text.index("FROM ${RUNTIME_IMAGE} AS runtime"):]
    assert "micromamba" not in runtime and "conda" not in runtime.replace("conda-pack", "")
    assert "COPY --from=env /venv /venv" in runtime
    assert re.search(r'^ENTRYPOINT \["python", "-m", "worker"\]$', runtime, re.M)  # no arguments: the worker


# -- environment.yml --------------------------------------------------------------------------

def test_environment_is_conda_forge_only_and_named() -> None:
    env = read_environment()
    assert env["name"] == "imgjobs-worker"
    assert env["channels"] == ["conda-forge", "nodefaults"]


def test_environment_holds_exactly_what_the_worker_imports() -> None:
    imported = third_party_imports("worker", "imgjobs")
    unknown = imported - set(ENV_PACKAGE)
    assert not unknown, f"the worker imports {unknown}: add them to requirements/worker.in and ENV_PACKAGE"
    packages = {PYPI_NAME.get(name, name) for name in conda_pins()} | set(pip_pins())
    assert {ENV_PACKAGE[name] for name in imported} <= packages
    # Everything the worker's lock pins, and nothing else but the interpreter and pip.
    assert packages - CONDA_ONLY == set(lock_pins("worker"))


def test_environment_pins_match_the_locks() -> None:
    worker, web = lock_pins("worker"), lock_pins("web")
    for conda_name, version in conda_pins().items():
        if conda_name in CONDA_ONLY:
            continue
        pypi = PYPI_NAME.get(conda_name, conda_name)
        assert worker.get(pypi) == version, f"{conda_name}: environment.yml {version}, worker.txt {worker.get(pypi)}"
        if pypi in web:
            assert web[pypi] == version, f"{conda_name}: environment.yml {version}, web.txt {web[pypi]}"


def test_environment_pip_section_is_the_lock_with_its_hashes() -> None:
    assert read_environment()["pip"][0] == "--only-binary=:all:"
    locked = lock_lines("worker")
    for name, line in pip_pins().items():
        assert line == locked[name], f"{name}: environment.yml and worker.txt differ: run `make lock`"
        assert "--hash=sha256:" in line, name


def test_locks_pin_every_package_with_hashes() -> None:
    for name in ("web", "worker", "dev"):
        for package, line in lock_lines(name).items():
            assert re.match(rf"{re.escape(package)}==\S+ .*--hash=sha256:[0-9a-f]{{64}}", line, re.I), (name, line)


def test_environment_python_matches_the_web_image() -> None:
    tag = dockerfile_arg("Dockerfile.web", "PYTHON_IMAGE").split(":")[1]
    assert tag.startswith(conda_pins()["python"] + "-"), (tag, conda_pins()["python"])


def test_compose_s3_override_shares_no_volume_between_web_and_workers(tmp_path: Path) -> None:
    secrets = {"S3_CREDENTIALS_FILE": tmp_path / "credentials", "SEAWEEDFS_S3_CONFIG": tmp_path / "identities.json"}
    for path in secrets.values():
        path.write_text("")
    env = {**os.environ, **{name: str(path) for name, path in secrets.items()}}
    out = run(tool("docker-compose"), "-f", str(COMPOSE_FILE), "-f", str(ROOT / "compose.s3.yaml"),
              "config", "--format", "json", env=env).stdout
    services = json.loads(out)["services"]
    web, worker = ({v.get("source") for v in services[name]["volumes"]} for name in ("web", "worker"))
    # An anonymous volume has no source: it is the worker's alone. The Redis password's is read-only.
    assert not web & worker - {None, "redis-auth"}
    for name in ("web", "worker"):
        assert services[name]["environment"]["STORAGE_URL"].startswith("s3://")
        assert "redis-auth" in web & worker and services[name]["environment"]["REDIS_PASSWORD_FILE"]
        assert "s3_credentials" in {s["source"] for s in services[name]["secrets"]}


# -- swarm.yaml (checked as compose resolves it; no live deploy yet) --------------------------

def swarm_config(tmp_path: Path) -> dict[str, Any]:
    """Return swarm.yaml (with its ports override) as compose resolves it, secrets from empty files."""
    secrets = {"S3_CREDENTIALS_FILE": tmp_path / "credentials", "SEAWEEDFS_S3_CONFIG": tmp_path / "identities.json",
               "API_KEYS_PATH": tmp_path / "api-keys", "REDIS_PASSWORD_PATH": tmp_path / "redis-password"}
    for path in secrets.values():
        path.write_text("")
    env = {**os.environ, **{name: str(path) for name, path in secrets.items()}}
    out = run(tool("docker-compose"), "-f", str(ROOT / "swarm.yaml"), "-f", str(ROOT / "swarm.ports.yaml"),
              "config", "--format", "json", env=env).stdout
    return dict(json.loads(out))


def test_swarm_stack_runs_web_and_workers_on_the_bucket_alone(tmp_path: Path) -> None:
    stack = swarm_config(tmp_path)
    services = stack["services"]
    assert set(services) == {"redis", "seaweedfs", "bucket", "web", "proxy", "worker"}
    assert {net["driver"] for net in stack["networks"].values()} == {"overlay"}
    for name in ("web", "worker"):
        service = services[name]
        assert service["environment"]["STORAGE_URL"].startswith("s3://")
        assert set(service["environment"]) - {"AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULT_REGION"} <= set(
            config.SETTINGS)
        assert {"s3_credentials", "redis_password"} <= {s["source"] for s in service["secrets"]}
        assert service["environment"]["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
        assert all(v["type"] == "tmpfs" or not v.get("source") for v in service["volumes"]), name  # no shared one
        assert service["read_only"] is True and service["healthcheck"]["test"]
        deploy = service["deploy"]
        assert int(deploy["replicas"]) >= 2 and deploy["resources"]["limits"]["memory"]
        assert deploy["restart_policy"]["condition"] == "any"
        assert deploy["update_config"]["parallelism"] == 1 and deploy["update_config"]["failure_action"] == "rollback"
    # a worker being replaced drains first: its running job may take JOB_TIMEOUT + 30 s
    assert services["worker"]["deploy"]["update_config"]["order"] == "stop-first"
    grace = seconds(services["worker"]["stop_grace_period"])
    assert grace >= int(services["worker"]["environment"]["JOB_TIMEOUT"]) + 30
    assert not services["web"].get("ports") and services["proxy"]["ports"][0]["target"] == 8080
    assert services["proxy"]["read_only"] is True and int(services["proxy"]["deploy"]["replicas"]) >= 2
    # published only with API keys on the web behind it
    assert services["web"]["environment"]["ALLOW_ANONYMOUS"] == "0" and services["web"]["environment"]["API_KEYS_FILE"]


def test_swarm_redis_takes_its_password_from_a_secret_on_stdin(tmp_path: Path) -> None:
    stack = swarm_config(tmp_path)
    redis = stack["services"]["redis"]
    assert [s["source"] for s in redis["secrets"]] == ["redis_password"]
    script = redis["command"][-1]
    assert "exec redis-server - " in script  # `$$` stays escaped in compose's output
    assert re.search(r"^requirepass \$+\(cat /run/secrets/redis_password\)$", script, re.M), script
    for setting in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert setting in script
    assert "REDISCLI_AUTH=" in " ".join(redis["healthcheck"]["test"])
    assert stack["secrets"]["redis_password"]["file"] == str(tmp_path / "redis-password")
