"""The deploy/ tree as the deploy tests see it: each overlay rendered by `kubectl kustomize`
(offline), and the pods, containers and volumes of what it renders.

`kubectl` and `promtool` are Debian packages that `make test` installs; a missing one fails the
test with a message saying so, it is never skipped.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
#: Kinds whose objects carry a pod template at spec.template.
WORKLOADS = ("Deployment", "StatefulSet", "Job")
#: Where each tool comes from.
_PACKAGES = {"kubectl": "kubectl", "promtool": "prometheus"}

#: One rendered Kubernetes object, as YAML maps it.
Manifest = dict[str, Any]


def tool(name: str) -> str:
    """The path of a command-line tool the deploy checks need."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (Debian package {_PACKAGES[name]}; make test)")
    return found


def run(argv: list[str], cwd: Path | None = None) -> str:
    """Run a tool; its stdout, or the test fails with its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


@functools.cache
def rendered(overlay: str) -> tuple[Manifest, ...]:
    """Every object `kubectl kustomize deploy/overlays/<overlay>` prints."""
    text = run([tool("kubectl"), "kustomize", str(DEPLOY / "overlays" / overlay)])
    return tuple(doc for doc in yaml.safe_load_all(text) if doc is not None)


@functools.cache
def kubernetes_version() -> str:
    """major.minor of the kubectl client: the API the manifests are written for."""
    version = json.loads(run([tool("kubectl"), "version", "--client", "--output", "json"]))
    client = version["clientVersion"]
    return f"{client['major']}.{client['minor'].rstrip('+')}"


def find(overlay: str, kind: str, name: str) -> Manifest:
    """The one rendered object of ``kind`` called ``name`` (generated names keep a hash suffix)."""
    found = [
        obj
        for obj in rendered(overlay)
        if obj["kind"] == kind
        and (obj["metadata"]["name"] == name or obj["metadata"]["name"].startswith(name + "-"))
    ]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(overlay: str) -> Iterator[tuple[str, Manifest]]:
    """("Kind/name", pod spec) of every workload the overlay renders."""
    for obj in rendered(overlay):
        if obj["kind"] in WORKLOADS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def containers(pod: Manifest) -> list[Manifest]:
    """Init containers first, then the others."""
    return [*pod.get("initContainers", []), *pod["containers"]]


def container(pod: Manifest, name: str) -> Manifest:
    """The container called ``name``."""
    return next(c for c in containers(pod) if c["name"] == name)


def volumes(pod: Manifest) -> dict[str, Manifest]:
    """The pod's volumes by name."""
    return {volume["name"]: volume for volume in pod.get("volumes", [])}


def routing_yaml(overlay: str) -> str:
    """The routing.yaml the overlay's gateways are given (ConfigMap cpr-gateway-config)."""
    text: str = find(overlay, "ConfigMap", "cpr-gateway-config")["data"]["routing.yaml"]
    return text
