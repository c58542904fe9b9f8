"""What a fleet writes under var/fleet/: each replica's routing.yaml, the emulator's config and
HAProxy's, built from the shipped files, read back by the loaders that will run them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cpr_devtools.fleet_configs import (
    BALANCER_SOURCE,
    FleetPlan,
    FleetPorts,
    fleet_emulator,
    haproxy_cfg,
    replica_routing,
)
from cpr_devtools.haproxy import haproxy_binary
from cpr_devtools.pki import ensure_dev_pki
from cpr_mainframe.config import load_config
from gateway.config import load_routing
from gateway.config.reader import read_yaml

ROOT = Path(__file__).resolve().parents[2]
VAR = Path("/srv/cpr/var")
PLAN = FleetPlan(3, VAR, FleetPorts(), "0.0.0.0")


def _shipped(name: str) -> dict[str, Any]:
    doc = read_yaml(ROOT / name)
    assert isinstance(doc, dict)
    return doc


def test_the_default_ports_are_the_issues() -> None:
    """HAProxy on 5000, replica i on 5100+i with admin 9110+i, Redis 6390, PostgreSQL 5440,
    the emulator on 5001 and the services on 50051 and 50052."""
    assert FleetPorts().every(2) == [5000, 5001, 6390, 5440, 50051, 50052, 5100, 5101, 9110, 9111]


def test_an_offset_moves_every_port() -> None:
    """--port-offset moves every listener of the fleet, none left behind."""
    ports = FleetPorts()
    assert ports.shifted(7).every(3) == [port + 7 for port in ports.every(3)]


def test_each_replica_keeps_the_routes_and_gets_its_own_ports() -> None:
    """The fleet routes as `make run` does; only where each replica listens differs."""
    raw = _shipped("routing.yaml")
    replicas = [replica_routing(raw, PLAN, index) for index in range(3)]
    for index, doc in enumerate(replicas):
        assert doc["routes"] == raw["routes"]
        assert doc["limits"] == raw["limits"]
        assert (doc["listen"]["host"], doc["listen"]["port"]) == ("127.0.0.1", 5100 + index)
        assert (doc["admin"]["host"], doc["admin"]["port"]) == ("127.0.0.1", 9110 + index)
    without_ports = [{**doc, "listen": None, "admin": None} for doc in replicas]
    assert without_ports[0] == without_ports[1] == without_ports[2]


def test_a_replica_shares_its_state_and_trusts_only_haproxy() -> None:
    """Sessions in the fleet's Redis, the shadow store in its PostgreSQL with one key file,
    the audit log in var/ with one key, and a PROXY header required from HAProxy's source
    address only."""
    doc = replica_routing(_shipped("routing.yaml"), PLAN, 1)
    assert doc["listen"]["proxy_protocol"] == {"trusted": [f"{BALANCER_SOURCE}/32"]}
    assert doc["sessions"]["store"] == "redis://127.0.0.1:6390/0"
    assert doc["shadowing"]["store"] == "postgresql://postgres@127.0.0.1:5440/shadow"
    assert doc["shadowing"]["key_file"] == str(VAR / "shadow.key")
    assert doc["admin"]["token_file"] == str(VAR / "admin.token")  # one token opens every replica
    assert doc["shadowing"]["retention"] == _shipped("routing.yaml")["shadowing"]["retention"]
    # One audit directory (each replica process writes files of its own) and one key.
    assert (doc["audit"]["directory"], doc["audit"]["key_file"]) == (
        str(VAR / "audit"),
        str(VAR / "audit.key"),
    )


def test_backends_point_at_the_fleets_emulator_and_both_services_replicas() -> None:
    """The legacy backend sends the client's address in a PROXY header to the fleet's
    emulator; the grpc backend balances round robin over both services replicas; both verify
    var/'s CA and present the gateway's client certificate."""
    backends = replica_routing(_shipped("routing.yaml"), PLAN, 0)["backends"]
    mutual = {
        "ca": str(VAR / "tls" / "ca.crt"),
        "server_name": "localhost",
        "cert": str(VAR / "tls" / "gateway-client.crt"),
        "key": str(VAR / "tls" / "gateway-client.key"),
    }
    assert backends["mainframe"] == {
        "kind": "legacy",
        "address": "127.0.0.1:5001",
        "tls": mutual,
        "connect_timeout": "1s",
        "proxy_protocol": True,
    }
    assert backends["persons-v2"] == {
        "kind": "grpc",
        "address": "ipv4:127.0.0.1:50051,127.0.0.1:50052",
        "tls": mutual,
        "balancing": "round_robin",
    }


def test_the_operators_document_is_left_as_it_was() -> None:
    """Deriving a replica's document does not change the one it was derived from."""
    raw = _shipped("routing.yaml")
    replica_routing(raw, PLAN, 0)
    fleet_emulator(_shipped("emulator.yaml"), PLAN)
    assert raw == _shipped("routing.yaml")


def test_every_file_a_replica_names_is_absolute_and_under_var() -> None:
    """The fleet's files live in var/fleet/, so a relative path there would point elsewhere."""
    doc = replica_routing(_shipped("routing.yaml"), PLAN, 0)
    files = [
        doc["listen"]["tls"]["cert"],
        doc["listen"]["tls"]["key"],
        doc["backends"]["mainframe"]["tls"]["ca"],
        doc["shadowing"]["key_file"],
        doc["admin"]["token_file"],
        doc["audit"]["directory"],
        doc["audit"]["key_file"],
    ]
    assert all(Path(f).is_absolute() and Path(f).is_relative_to(VAR) for f in files), files


def test_replica_configs_load(tmp_path: Path) -> None:
    """Every replica's routing.yaml is one the gateway accepts, as written."""
    plan = _plan_with_files(tmp_path)
    for index in range(plan.replicas):
        path = tmp_path / f"gateway-{index}.yaml"
        path.write_text(yaml.safe_dump(replica_routing(_shipped("routing.yaml"), plan, index)))
        config = load_routing(path)
        assert config.listen.port == 5100 + index
        assert [r.name for r in config.routes] == ["lookups", "all-legacy"]
        assert config.canary.store == config.shadowing.store  # one state for the fleet


def test_the_emulator_trusts_the_gateways_and_keeps_its_customers() -> None:
    """The fleet's emulator: loopback on its usual port, PROXY headers from the gateways'
    address, var/'s certificate and register, a state file of its own."""
    raw = _shipped("emulator.yaml")
    doc = fleet_emulator(raw, PLAN)
    assert doc["listen"] == {
        "host": "127.0.0.1",
        "port": 5001,
        "proxy_protocol": {"trusted": ["127.0.0.1/32"]},
    }
    assert doc["tls"] == {
        "cert": str(VAR / "tls" / "emulator.crt"),
        "key": str(VAR / "tls" / "emulator.key"),
    }
    assert doc["register"] == str(VAR / "register.sqlite")
    assert doc["state"] == str(VAR / "fleet" / "emulator-state.sqlite")
    assert doc["customers"] == raw["customers"]


def test_the_emulator_config_loads(tmp_path: Path) -> None:
    """The fleet's emulator.yaml is one the emulator accepts, as written."""
    plan = _plan_with_files(tmp_path)
    path = tmp_path / "emulator.yaml"
    path.write_text(yaml.safe_dump(fleet_emulator(_shipped("emulator.yaml"), plan)))
    config = load_config(path)
    assert config.listen.port == 5001
    assert config.state == plan.dir / "emulator-state.sqlite"


def test_haproxy_balances_over_every_replica_with_proxy_headers_and_readiness_checks() -> None:
    """One server per replica on its client port, checked on its admin port's /readyz,
    sent the client's address from HAProxy's own source address; a refused connection
    goes to another replica."""
    cfg = haproxy_cfg(PLAN)
    assert "    mode tcp" in cfg
    assert "    bind 0.0.0.0:5000\n" in cfg
    assert "    balance roundrobin" in cfg
    assert "    option httpchk GET /readyz" in cfg
    assert f"default-server send-proxy-v2 source {BALANCER_SOURCE} " in cfg
    assert "    option redispatch 1" in cfg
    servers = [line.split() for line in cfg.splitlines() if line.startswith("    server ")]
    assert servers == [
        ["server", f"gateway-{i}", f"127.0.0.1:{5100 + i}", "check", "port", str(9110 + i)]
        for i in range(3)
    ]
    assert f"stats socket {VAR / 'fleet' / 'haproxy.sock'} mode 600 level admin" in cfg


def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    """`haproxy -c` (the real program) finds nothing wrong with the fleet's config."""
    binary = haproxy_binary()
    if binary is None:
        pytest.fail("haproxy is not installed (apt-get install haproxy)")
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_cfg(FleetPlan(2, tmp_path, FleetPorts(), "127.0.0.1")))
    done = subprocess.run(
        [binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "[WARNING]" not in done.stdout + done.stderr


def _plan_with_files(tmp_path: Path) -> FleetPlan:
    """A plan whose certificates exist (the loaders read them), with the default ports."""
    ensure_dev_pki(tmp_path / "tls")
    (tmp_path / "fleet").mkdir()
    return FleetPlan(2, tmp_path, FleetPorts(), "0.0.0.0")
