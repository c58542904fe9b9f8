"""`cpr-gateway up --replicas N`: which processes the fleet runs, in which order, listening
where, and what the command line may ask for. Nothing is started here."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from cpr_devtools.fleet import Programs, fleet_parts, plan_of
from cpr_devtools.fleet_configs import FleetPlan, FleetPorts
from cpr_devtools.supervisor import Part
from gateway.cli import main
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
VAR = Path("/srv/cpr/var")
PROGRAMS = Programs(
    "/usr/bin/redis-server", Path("/usr/lib/postgresql/15/bin"), "/usr/sbin/haproxy"
)


def _parts(replicas: int = 3) -> dict[str, Part]:
    parts = fleet_parts(FleetPlan(replicas, VAR, FleetPorts(), "0.0.0.0"), PROGRAMS)
    return {part.name: part for part in parts}


def _ports(part: Part) -> list[int]:
    return [listener.port for listener in part.listeners]


def test_parts_start_after_what_they_need() -> None:
    """Stores first, then the backends, the gateway replicas, and HAProxy last (so the
    supervisor stops HAProxy first and the stores last)."""
    assert list(_parts()) == [
        "redis",
        "postgres",
        "emulator",
        "services-0",
        "services-1",
        "gateway-0",
        "gateway-1",
        "gateway-2",
        "haproxy",
    ]


def test_every_listener_is_where_the_plan_says() -> None:
    """Each part is awaited on the ports the issue names; a replica on its client and admin
    ports; HAProxy reached on loopback when it binds every address."""
    parts = _parts()
    assert _ports(parts["redis"]) == [6390]
    assert _ports(parts["postgres"]) == [5440]
    assert _ports(parts["emulator"]) == [5001]
    assert _ports(parts["services-0"]) + _ports(parts["services-1"]) == [50051, 50052]
    assert [_ports(parts[f"gateway-{i}"]) for i in range(3)] == [
        [5100, 9110],
        [5101, 9111],
        [5102, 9112],
    ]
    haproxy = parts["haproxy"].listeners
    assert [(each.host, each.port) for each in haproxy] == [("127.0.0.1", 5000)]


def test_only_gateway_and_services_replicas_are_expendable() -> None:
    """A gateway replica that stops leaves HAProxy the others, a services replica leaves the
    gateways' round_robin the other; any other part stopping stops all."""
    expendable = {name for name, part in _parts().items() if part.expendable}
    assert expendable == {"gateway-0", "gateway-1", "gateway-2", "services-0", "services-1"}


def test_redis_keeps_nothing_on_disk_and_listens_on_loopback() -> None:
    """Sessions are re-created by a logon: no snapshots, no append-only file."""
    argv = _parts()["redis"].argv
    assert argv[0] == "/usr/bin/redis-server"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--save"] == ""
    assert pairs["--appendonly"] == "no"
    assert (pairs["--bind"], pairs["--port"]) == ("127.0.0.1", "6390")
    assert pairs["--dir"] == str(VAR / "fleet" / "redis")


def test_postgres_runs_in_the_foreground_as_a_user_it_accepts() -> None:
    """The server itself (not pg_ctl) under the supervisor, on loopback; as `postgres` when
    we are root, since PostgreSQL refuses root; its databases made before the next part."""
    part = _parts()["postgres"]
    as_postgres = ("setpriv", "--reuid", "postgres", "--regid", "postgres", "--clear-groups", "--")
    prefix = as_postgres if os.geteuid() == 0 else ()
    assert part.argv[: len(prefix)] == prefix
    assert part.argv[len(prefix) :] == (
        "/usr/lib/postgresql/15/bin/postgres",
        *("-D", str(VAR / "fleet" / "pg" / "data"), "-p", "5440"),
        *("-k", str(VAR / "fleet" / "pg"), "-c", "listen_addresses=127.0.0.1"),
    )
    assert part.after_start is not None


def test_services_replicas_share_one_store_and_trust_the_gateways() -> None:
    """Both services replicas use the fleet's PostgreSQL database (so a token one issues the
    other accepts) and take the client's address from the gateways on loopback."""
    parts = _parts()
    for index, port in enumerate((50051, 50052)):
        argv = parts[f"services-{index}"].argv
        options = dict(zip(argv[4::2], argv[5::2], strict=True))
        assert options["--store"] == "postgresql://postgres@127.0.0.1:5440/services"
        assert options["--port"] == str(port)
        assert options["--trusted-gateways"] == "127.0.0.1/32"


def test_each_replica_serves_its_own_routing_file() -> None:
    """Replica i runs `serve --config var/fleet/gateway-i.yaml`, one process each."""
    for index in range(3):
        argv = _parts()[f"gateway-{index}"].argv
        assert argv[-3:] == ("serve", "--config", str(VAR / "fleet" / f"gateway-{index}.yaml"))


def test_haproxy_runs_the_fleets_config_in_the_foreground() -> None:
    """HAProxy with -db (no daemon) so that the supervisor's SIGTERM stops it."""
    argv = _parts()["haproxy"].argv
    assert argv == ("/usr/sbin/haproxy", "-db", "-f", str(VAR / "fleet" / "haproxy.cfg"))


def _args(**given: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "routing": ROOT / "routing.yaml",
        "emulator_config": ROOT / "emulator.yaml",
        "var": Path("var"),
        "replicas": 2,
        "port_offset": 0,
    }
    return argparse.Namespace(**{**defaults, **given})


def test_the_plan_takes_haproxys_and_the_emulators_ports_from_their_files() -> None:
    """HAProxy where routing.yaml's gateway listens (0.0.0.0:5000), the emulator where
    emulator.yaml says (5001), var/ made absolute."""
    plan = plan_of(_args())
    assert (plan.balancer_host, plan.ports.balancer, plan.ports.emulator) == ("0.0.0.0", 5000, 5001)
    assert plan.var == Path("var").resolve()
    assert plan_of(_args(port_offset=1000)).ports == FleetPorts().shifted(1000)


def test_an_offset_beyond_the_last_port_is_refused() -> None:
    """An offset that pushes a port past 65535 is a clear error before anything starts."""
    with pytest.raises(ConfigError, match=r"--port-offset 20000: port 70051 does not exist"):
        plan_of(_args(port_offset=20000))


def test_replicas_below_one_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`up --replicas 0` is a usage error (exit 2) that says what is accepted."""
    with pytest.raises(SystemExit) as stopped:
        main(["up", "--replicas", "0"])
    assert stopped.value.code == 2
    assert "--replicas: at least 1, got 0" in capsys.readouterr().err
