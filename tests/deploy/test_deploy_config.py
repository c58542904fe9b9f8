"""The configuration the overlays give the processes: a routing.yaml the gateway accepts, whose
files are in the pod and whose store addresses carry no password, an emulator config that is the
repository's demo, and a ConfigMap update the running gateway notices."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_tree import DEPLOY, OVERLAYS, ROOT, container, find, routing_yaml

from cpr_mainframe.config import load_config
from gateway.config import load_routing
from gateway.config.schema import GatewayConfig
from gateway.config.watch import FileWatcher


def _files(config: GatewayConfig) -> list[Path]:
    """Every file a loaded routing.yaml names: certificates, keys, CAs, the pseudonym key."""
    tls = config.listen.tls
    files = [] if tls is None else [tls.cert, tls.key]
    for backend in config.backends.values():
        client_tls = getattr(backend, "tls", None)
        if client_tls is not None and client_tls.ca is not None:
            files.append(client_tls.ca)
    if config.shadowing.key_file is not None:
        files.append(config.shadowing.key_file)
    return files


def _load(overlay: str, directory: Path) -> GatewayConfig:
    path = directory / "routing.yaml"
    path.write_text(routing_yaml(overlay), encoding="utf-8")
    return load_routing(path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routing_yaml_is_one_the_gateway_accepts(overlay: str, tmp_path: Path) -> None:
    """Loaded as `cpr-gateway serve` loads it: every key known, every value valid."""
    config = _load(overlay, tmp_path)
    assert config.sessions.store is not None, "replicas must share their sessions"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routing_yaml_names_files_the_pod_mounts_by_absolute_path(
    overlay: str, tmp_path: Path
) -> None:
    """A relative path would resolve into the ConfigMap's timestamped directory, which the next
    update deletes (here: into tmp_path); each file must lie in a volume the gateway mounts."""
    pod = find(overlay, "Deployment", "cpr-gateway")["spec"]["template"]["spec"]
    mounts = [Path(m["mountPath"]) for m in container(pod, "gateway")["volumeMounts"]]
    files = _files(_load(overlay, tmp_path))
    assert len(files) == 4  # server certificate and key, the mainframe's CA, the pseudonym key
    for file in files:
        assert any(file.is_relative_to(mount) for mount in mounts), f"{file} is in no mount"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_store_addresses_carry_no_password(overlay: str) -> None:
    """Passwords come from a Secret (a libpq password file), never from the ConfigMap."""
    raw = yaml.safe_load(routing_yaml(overlay))
    for address in (raw["sessions"]["store"], raw["shadowing"]["store"]):
        assert urlsplit(address).password is None, address
        assert "password" not in address


def test_dev_emulator_serves_the_repository_demo_customers() -> None:
    """The dev overlay's copy loads, and differs from emulator.yaml only in paths and listen."""
    dev = DEPLOY / "overlays" / "dev" / "emulator-config.yaml"
    config = load_config(dev)
    assert config.customers == load_config(ROOT / "emulator.yaml").customers
    assert config.listen.port == 5001
    assert config.listen.proxy_protocol is not None


def _kubelet_write(directory: Path, stamp: str, text: str) -> None:
    """What the kubelet does for a ConfigMap volume: a new timestamped directory, the ..data
    symlink swapped to it in one rename, the old directory removed."""
    (directory / stamp).mkdir()
    (directory / stamp / "routing.yaml").write_text(text, encoding="utf-8")
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    os.symlink(stamp, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")
    if not (directory / "routing.yaml").is_symlink():
        os.symlink("..data/routing.yaml", directory / "routing.yaml")
    if old is not None:
        shutil.rmtree(directory / old)


async def _no_reload() -> None:
    raise AssertionError("poll() is driven by hand here")


def test_the_watcher_follows_the_kubelets_symlink_swap(tmp_path: Path) -> None:
    """An update of the mounted ConfigMap is a change of routing.yaml to the gateway (what the
    directory mount relies on), noticed on the second poll, once it has settled."""
    _kubelet_write(tmp_path, "..2026_01_01_00_00_00.000000001", "version: 1\n# a\n")
    watcher = FileWatcher(tmp_path / "routing.yaml", _no_reload)
    assert watcher.poll() is False
    _kubelet_write(tmp_path, "..2026_01_01_00_01_00.000000002", "version: 1\n# b\n")
    assert [watcher.poll(), watcher.poll()] == [False, True]
    assert (tmp_path / "routing.yaml").read_text(encoding="utf-8").endswith("# b\n")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_owner_only_files_are_the_init_containers_copies(overlay: str, tmp_path: Path) -> None:
    """The pseudonym key, the admin tokens and the password file the gateway reads are those its
    init container copies out of their Secrets, into the directory routing.yaml and PGPASSFILE
    name."""
    pod = find(overlay, "Deployment", "cpr-gateway")["spec"]["template"]["spec"]
    command = container(pod, "private-files")["command"]
    target = Path(command[command.index("-t") + 1])
    copied = {target / Path(source).name for source in command[command.index("-t") + 2 :]}
    env = {e["name"]: e.get("value") for e in container(pod, "gateway")["env"]}
    config = _load(overlay, tmp_path)
    key_file, token_file = config.shadowing.key_file, config.admin.token_file
    assert copied == {key_file, token_file, Path(env["PGPASSFILE"])}
