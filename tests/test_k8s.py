"""The Kubernetes manifests, checked offline: API schemas (kubernetes-validate), settings, no shared volume, scaling."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml

from imgjobs import config
from tests.services import ROOT, free_port, wait_until

MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
K8S_VERSION = "1.33.0"


def resources() -> list[dict[str, Any]]:
    """Return every resource in every manifest."""
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def kind(name: str) -> list[dict[str, Any]]:
    """Return the resources of one kind."""
    return [doc for doc in resources() if doc["kind"] == name]


def deployment(name: str) -> dict[str, Any]:
    return next(doc for doc in kind("Deployment") if doc["metadata"]["name"] == name)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_the_kubernetes_schemas(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any unknown or wrong field


def test_the_config_map_holds_only_real_settings_and_uses_the_store() -> None:
    data = kind("ConfigMap")[0]["data"]
    assert set(data) <= set(config.SETTINGS)
    assert data["STORAGE_URL"].startswith("s3://")


@pytest.mark.parametrize("name", ["web", "worker"])
def test_web_and_workers_share_no_volume_and_are_hardened(name: str) -> None:
    pod = deployment(name)["spec"]["template"]["spec"]
    # Scratch only, per pod, and the Redis password read-only from its Secret.
    assert all(set(volume) == {"name", "emptyDir"} for volume in pod["volumes"] if volume["name"] != "redis-password")
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"]
    assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]} == {
        "imgjobs", "imgjobs-s3"}


def test_workers_scale_on_a_metric_the_web_exports(client) -> None:
    hpa = kind("HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    metric = hpa["metrics"][0]["external"]["metric"]
    queue = metric["selector"]["matchLabels"]["queue"]
    assert queue == kind("ConfigMap")[0]["data"]["QUEUE_NAME"]
    client.application.config["QUEUE_NAME"] = queue
    assert f'{metric["name"]}{{queue="{queue}"}}' in client.get("/metrics").text


def statefulset(name: str) -> dict[str, Any]:
    return next(doc for doc in kind("StatefulSet") if doc["metadata"]["name"] == name)


def password_mount(pod: dict[str, Any]) -> str:
    """Return where the pod's first container mounts the imgjobs-redis Secret (read-only, group-readable)."""
    [volume] = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "imgjobs-redis"]
    assert volume["secret"]["defaultMode"] == 0o440  # root-owned, fsGroup reads it
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    return str(mount["mountPath"])


def test_redis_web_and_workers_get_the_password_from_the_secret() -> None:
    [secret] = [doc for doc in kind("Secret") if doc["metadata"]["name"] == "imgjobs-redis"]
    assert set(secret["stringData"]) == {"password"}
    path = kind("ConfigMap")[0]["data"]["REDIS_PASSWORD_FILE"]
    for name in ("web", "worker"):
        assert password_mount(deployment(name)["spec"]["template"]["spec"]) + "/password" == path
    redis_pod = statefulset("redis")["spec"]["template"]["spec"]
    assert password_mount(redis_pod) + "/password" == path
    container = redis_pod["containers"][0]
    assert "requirepass $password" in container["args"][-1] and "redis-server -" in container["args"][-1]
    assert "REDISCLI_AUTH=" in " ".join(container["readinessProbe"]["exec"]["command"])


def redis_script(password_file: Path, directory: Path, port: int) -> list[str]:
    """Return the redis container's command with the secret's path, the data dir and the port made local."""
    args = list(statefulset("redis")["spec"]["template"]["spec"]["containers"][0]["args"])
    script = args[-1].replace("/run/secrets/redis/password", str(password_file)).replace("/data", str(directory))
    local = f"--protected-mode no --port {port} --bind 127.0.0.1 --save ''"
    args[-1] = script.replace("--protected-mode no", local)
    return args


def test_the_redis_command_requires_the_secrets_password(tmp_path: Path) -> None:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make system-deps)")
    secret, port = tmp_path / "password", free_port()
    secret.write_text("replace-me")
    refused = subprocess.run(redis_script(secret, tmp_path, port), capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "set the imgjobs-redis Secret's password" in refused.stderr

    secret.write_text("k8s-secret.value_1\n")  # as `kubectl create secret --from-file` may leave it
    server = subprocess.Popen(redis_script(secret, tmp_path, port), stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password="k8s-secret.value_1")

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False
        wait_until(answers, 20, "the k8s redis command to serve")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).set("intruder", "1")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server.terminate()
        server.wait(timeout=20)
