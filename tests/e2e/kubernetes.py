"""Rendering and reading deploy/kubernetes for the tests: `kubectl kustomize` and
`kubernetes-validate` (both from the [test] extra), and where things are in a rendered list."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.tools import extra_tool

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAY = KUBERNETES / "overlays" / "example"
# The oldest Kubernetes with gRPC probes generally available, and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
HEALTHCHECK = ["workengine", "healthcheck"]

Resource = dict[str, Any]


def render(directory: Path) -> list[Resource]:
    result = subprocess.run(
        [extra_tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def with_components(tmp_path: Path, *components: str) -> Path:
    """A kustomization of the base and `components`, outside the repository (paths relative:
    kustomize refuses absolute ones)."""
    relative = os.path.relpath(KUBERNETES, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{relative}/base"],
                "components": [f"{relative}/components/{name}" for name in components],
            }
        )
    )
    return tmp_path


def one(resources: list[Resource], kind: str) -> Resource:
    found = [resource for resource in resources if resource["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} resources"
    return found[0]


def pod_spec(resources: list[Resource]) -> Resource:
    spec: Resource = one(resources, "Deployment")["spec"]["template"]["spec"]
    return spec


def server_container(resources: list[Resource]) -> Resource:
    containers = pod_spec(resources)["containers"]
    assert [container["name"] for container in containers] == ["workengine"], containers
    container: Resource = containers[0]
    return container


def all_containers(resources: list[Resource]) -> list[Resource]:
    spec = pod_spec(resources)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env(container: Resource) -> dict[str, Resource]:
    return {variable["name"]: variable for variable in container.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [extra_tool("kubernetes-validate"), "--strict", "-k", version, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
