"""The Secrets the pods mount: none is rendered from the repository (but the dev overlay's public
demo customers); dev's come from create-secrets.sh, prod's from the operator, and docs/deploy.md
lists them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from deploy_tree import (
    DEPLOY,
    OVERLAYS,
    ROOT,
    Manifest,
    kubernetes_version,
    pod_specs,
    rendered,
    run,
    tool,
)
from deploy_tree import volumes as pod_volumes

_SCRIPT = DEPLOY / "overlays" / "dev" / "create-secrets.sh"


def _mounted(overlay: str) -> set[str]:
    """Names of the Secrets the overlay's pods mount that it does not render itself."""
    made_here = {obj["metadata"]["name"] for obj in rendered(overlay) if obj["kind"] == "Secret"}
    return {
        volume["secret"]["secretName"]
        for _where, pod in pod_specs(overlay)
        for volume in pod_volumes(pod).values()
        if "secret" in volume
    } - made_here


def _printed(tmp_path: Path) -> dict[str, Manifest]:
    """The script's --print output by Secret name; it runs without any cluster configured."""
    env = {
        "PATH": f"{Path(tool('kubectl')).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(tmp_path / "no-cluster"),
        "VENV": str(Path(sys.executable).parent.parent),
    }
    argv = ["env", *(f"{key}={value}" for key, value in env.items()), str(_SCRIPT), "--print"]
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(run(argv)) if doc}


def test_dev_secrets_script_makes_every_secret_dev_mounts(tmp_path: Path) -> None:
    """Printed without a cluster: each is a valid Secret, and together they are what dev needs."""
    printed = _printed(tmp_path)
    assert set(printed) == _mounted("dev") | {"cpr-postgres"}
    for secret in printed.values():
        kubernetes_validate.validate(secret, kubernetes_version(), strict=True)
    assert set(printed["cpr-gateway-tls"]["data"]) == {"tls.crt", "tls.key", "ca.crt"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_docs_list_every_secret_the_pods_mount(overlay: str) -> None:
    """An operator creating prod's Secrets from docs/deploy.md misses none."""
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    missing = sorted(name for name in _mounted(overlay) if f"`{name}`" not in docs)
    assert missing == []
