"""The Kubernetes manifests, checked offline: API schemas (kubernetes-validate), settings, no shared volume, scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from imgjobs import config
from tests.services import ROOT

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
    assert all(set(volume) == {"name", "emptyDir"} for volume in pod["volumes"])  # scratch only, per pod
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
