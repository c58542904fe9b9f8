"""What `cpr-gateway up` and the simulators create holds personal data or secrets: each file
is created 0600 and each directory 0700, by the code paths that make them (real files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpr_accounts.state import StateStore
from cpr_devtools.fleet import write_configs
from cpr_devtools.fleet_configs import FleetPlan, FleetPorts
from cpr_devtools.postgres import Cluster, let_through
from cpr_devtools.up import ensure_admin_token, prepare_var
from cpr_services.store import ModernStore
from gateway.shadow.pseudonym import KEY_ENV, load_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    """The modes must not depend on a strict umask: run under the common 022."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_up_makes_var_its_keys_and_register_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """var/ and var/tls/ 0700; the register and every private key 0600 (certificates are
    public, and private only by their directory)."""
    var = tmp_path / "stack" / "var"
    prepare_var(var, persons=20)
    capsys.readouterr()
    assert [mode(p) for p in (tmp_path / "stack", var, var / "tls")] == [0o700] * 3
    keys = sorted(p.name for p in (var / "tls").glob("*.key"))
    assert keys == ["ca.key", "emulator.key", "gateway-client.key", "gateway.key", "services.key"]
    assert {mode(var / "tls" / name) for name in keys} == {0o600}
    assert mode(var / "register.sqlite") == 0o600
    assert sorted(p.name for p in var.iterdir()) == ["register.sqlite", "tls"]  # no temp left


def test_the_admin_token_and_the_shadow_key_are_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    ensure_admin_token(tmp_path / "tokens" / "admin.token", "http://127.0.0.1:9100/")
    capsys.readouterr()
    load_key(tmp_path / "keys" / "shadow.key")
    for path in (tmp_path / "tokens" / "admin.token", tmp_path / "keys" / "shadow.key"):
        assert (mode(path.parent), mode(path)) == (0o700, 0o600), path


def test_the_emulator_state_file_is_private(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path / "state" / "emulator-state.sqlite")
    store.close()
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "emulator-state.sqlite") == 0o600


def test_the_services_store_and_its_wal_are_private(tmp_path: Path) -> None:
    """The services' store keeps password digests; its WAL and shared memory too."""
    store = ModernStore.open(tmp_path / "services" / "modern.sqlite")
    try:
        files = sorted((tmp_path / "services").iterdir())
        names = [p.name for p in files]
        assert names == ["modern.sqlite", "modern.sqlite-shm", "modern.sqlite-wal"]
        assert {mode(p) for p in files} == {0o600}
        assert mode(tmp_path / "services") == 0o700
    finally:
        store.close()


def test_the_fleet_directories_are_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    var = tmp_path / "var"
    prepare_var(var, persons=20)
    capsys.readouterr()
    plan = FleetPlan(2, var, FleetPorts(), "127.0.0.1")
    write_configs(plan, ROOT / "routing.yaml", ROOT / "emulator.yaml")
    assert [mode(p) for p in (var / "fleet", var / "fleet" / "redis")] == [0o700, 0o700]


def test_a_cluster_run_as_another_user_may_pass_through_var_and_no_further(
    tmp_path: Path,
) -> None:
    """As root the cluster runs as ``postgres``: var/ and var/fleet/ become search-only for
    others (0711), so it reaches var/fleet/pg/; what is above var/ is not touched."""
    (tmp_path / "var" / "fleet").mkdir(parents=True, mode=0o700)
    (tmp_path / "var").chmod(0o700)
    above = mode(tmp_path)
    cluster = Cluster(tmp_path / "var" / "fleet" / "pg", "127.0.0.1", 5440)
    let_through(cluster, None, tmp_path / "var")
    assert mode(tmp_path / "var") == 0o700  # running as ourselves: nothing to open
    let_through(cluster, "postgres", tmp_path / "var")
    assert [mode(tmp_path / p) for p in ("var", "var/fleet")] == [0o711, 0o711]
    assert mode(tmp_path) == above
