"""`cpr-gateway up --replicas N`: the fleet on one machine, in the foreground.

Redis (the gateways' sessions), PostgreSQL (the shadow store and the services' store),
the emulator, two replicas of the reference services, N gateway replicas and HAProxy in
front of them, each a process under :mod:`.supervisor`, started in that order. What each
runs with is written under var/fleet/ from routing.yaml and emulator.yaml
(:mod:`.fleet_configs`); :func:`fleet_parts` is what runs, without running it.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import yaml

from cpr_devtools import fleet_configs as fc
from cpr_devtools.fleet_configs import FleetPorts
from cpr_devtools.haproxy import haproxy_argv, haproxy_binary
from cpr_devtools.migration import migrate_register
from cpr_devtools.postgres import (
    ClusterError,
    cluster_user,
    ensure_databases,
    init_cluster,
    let_through,
    server_bin,
)
from cpr_devtools.redis_server import redis_argv
from cpr_devtools.supervisor import Listener, Part, StartFailed, run_stack
from cpr_devtools.up import connectable, ensure_admin_token, prepare_var, services_tls
from cpr_mainframe.config import load_config
from cpr_services.drift import DEMO_DRIFT
from cpr_services.store import ModernStore
from gateway.config import load_routing
from gateway.config.reader import read_yaml
from gateway.errors import ConfigError
from gateway.storage.files import private_directory

T = TypeVar("T")
_CLI = (sys.executable, "-m", "gateway.cli")
_INSTALL = "`make fleet` installs it, or: apt-get install"


@dataclass(frozen=True, slots=True)
class Programs:
    """The servers' programs the fleet runs beside its own."""

    redis: str
    postgres_bin: Path
    haproxy: str


def find_programs() -> Programs:
    """Redis, PostgreSQL and HAProxy as installed here; ConfigError names what is missing."""
    redis, postgres, haproxy = shutil.which("redis-server"), server_bin(), haproxy_binary()
    missing = [
        f"{name} is not installed ({_INSTALL} {package})"
        for name, package, found in (
            ("redis-server", "redis-server", redis),
            ("PostgreSQL", "postgresql", postgres),
            ("haproxy", "haproxy", haproxy),
        )
        if found is None
    ]
    if redis is None or postgres is None or haproxy is None:
        raise ConfigError(missing)
    return Programs(redis, postgres, haproxy)


async def run_fleet_up(args: argparse.Namespace) -> int:
    """`cpr-gateway up --replicas N`: var/ as for the default stack, then the fleet."""
    plan = plan_of(args)
    prepare_var(args.var, args.persons)
    if load_routing(args.routing).admin.token_file is not None:
        admin = f"http://{fc.LOOPBACK}:{plan.ports.admin}/"
        ensure_admin_token(plan.admin_token, f"{admin} (replica 0; each replica serves one)")
    return await run_fleet(plan, args.routing, args.emulator_config)


def plan_of(args: argparse.Namespace) -> fc.FleetPlan:
    """The fleet the command line asks for: HAProxy where routing.yaml's gateway listens,
    the emulator where emulator.yaml's does, every port moved by ``--port-offset``."""
    listen = _checked(args.routing, load_routing).listen
    emulator = _checked(args.emulator_config, load_config).listen
    ports = FleetPorts(balancer=listen.port, emulator=emulator.port).shifted(args.port_offset)
    drift = getattr(args, "drift", DEMO_DRIFT)
    plan = fc.FleetPlan(args.replicas, args.var.resolve(), ports, listen.host, drift)
    beyond = [port for port in plan.ports.every(plan.replicas) if not 0 < port < 65536]
    if beyond:
        raise ConfigError([f"--port-offset {args.port_offset}: port {beyond[0]} does not exist"])
    return plan


async def run_fleet(plan: fc.FleetPlan, routing: Path, emulator_config: Path) -> int:
    """Write the fleet's configs, make its cluster once, then run it until Ctrl-C."""
    programs = find_programs()
    write_configs(plan, routing, emulator_config)
    let_through(plan.cluster, cluster_user(), plan.var)
    try:
        if init_cluster(plan.cluster, programs.postgres_bin, cluster_user()):
            print(f"created a PostgreSQL cluster in {plan.cluster.root}", flush=True)
    except ClusterError as exc:
        raise ConfigError([str(exc)]) from None
    print(f"the fleet's configs: {plan.dir}/; HAProxy's admin socket: {plan.stats_socket}")
    print(f"shadow report: cpr-gateway diff --store {plan.dsn(fc.SHADOW_DB)}", flush=True)
    return await run_stack(fleet_parts(plan, programs))


def write_configs(plan: fc.FleetPlan, routing: Path, emulator_config: Path) -> None:
    """The emulator's, each replica's and HAProxy's config under var/fleet/, each read back
    by its own loader (ConfigError before anything starts). var/fleet/ and its redis/ are
    made 0700: they hold the shadow evidence, the services' store and the sessions."""
    private_directory(plan.dir)
    emulator = _mapping(read_yaml(emulator_config), emulator_config)
    _write_yaml(plan.emulator_config, fc.fleet_emulator(emulator, plan))
    _checked(plan.emulator_config, load_config)
    raw = _mapping(read_yaml(routing), routing)
    for index in range(plan.replicas):
        _write_yaml(plan.routing_path(index), fc.replica_routing(raw, plan, index))
        _checked(plan.routing_path(index), load_routing)
    plan.haproxy_config.write_text(fc.haproxy_cfg(plan))
    private_directory(plan.dir / "redis")


def fleet_parts(plan: fc.FleetPlan, programs: Programs) -> list[Part]:
    """The fleet's processes in the order they start (and the reverse of their stop)."""
    return [
        _redis(plan, programs.redis),
        _postgres(plan, programs.postgres_bin),
        _emulator(plan),
        *(_services(plan, index) for index in range(len(plan.ports.services))),
        *(_gateway(plan, index) for index in range(plan.replicas)),
        _haproxy(plan, programs.haproxy),
    ]


def _redis(plan: fc.FleetPlan, program: str) -> Part:
    argv = tuple(redis_argv(program, plan.ports.redis, plan.dir / "redis"))
    listener = Listener(fc.LOOPBACK, plan.ports.redis, "Redis (the gateways' sessions)")
    return Part("redis", argv, (listener,))


def _postgres(plan: fc.FleetPlan, bin_dir: Path) -> Part:
    what = "PostgreSQL (shadow store, services' store)"
    return Part(
        "postgres",
        plan.cluster.server_argv(bin_dir, cluster_user()),
        (Listener(fc.LOOPBACK, plan.ports.postgres, what),),
        after_start=functools.partial(prepare_databases, plan),
    )


def prepare_databases(plan: fc.FleetPlan) -> None:
    """The fleet's databases, and the services' store migrated from the register when it is
    empty or in an older message format; StartFailed says why when that cannot be done."""
    try:
        ensure_databases(plan.cluster, (fc.SHADOW_DB, fc.SERVICES_DB))
        store = ModernStore.open(plan.dsn(fc.SERVICES_DB))
        try:
            stale = store.count() == 0 or store.stale_messages() > 0
        finally:
            store.close()
        if stale:
            print("migrating the register into the services' store…", flush=True)
            migrate_register(plan.register, plan.dsn(fc.SERVICES_DB), progress=True)
    except (psycopg.Error, ConfigError) as exc:
        raise StartFailed(f"postgres: preparing the fleet's databases failed: {exc}") from None


def _emulator(plan: fc.FleetPlan) -> Part:
    argv = (*_CLI, "emulator", "--config", str(plan.emulator_config))
    what = "mainframe emulator (CPR Direkte)"
    return Part("emulator", argv, (Listener(fc.LOOPBACK, plan.ports.emulator, what),))


def _services(plan: fc.FleetPlan, index: int) -> Part:
    port = plan.ports.services[index]
    argv = (
        *(*_CLI, "backend", "--config", str(plan.emulator_config)),
        *("--store", plan.dsn(fc.SERVICES_DB), "--host", fc.LOOPBACK, "--port", str(port)),
        *("--drift", plan.drift, "--trusted-gateways", f"{fc.GATEWAY_SOURCE}/32"),
        *services_tls(plan.pki),
    )
    what = f"new gRPC services (cpr.v1), replica {index}"
    # A replica that stops is one the gateways' round_robin leaves out; the rest carries on.
    return Part(f"services-{index}", argv, (Listener(fc.LOOPBACK, port, what),), expendable=True)


def _gateway(plan: fc.FleetPlan, index: int) -> Part:
    argv = (*_CLI, "serve", "--config", str(plan.routing_path(index)))
    client, admin = plan.ports.gateway + index, plan.ports.admin + index
    listeners = (
        Listener(fc.LOOPBACK, client, f"gateway replica {index} (CPR Direkte, TLS)"),
        Listener(fc.LOOPBACK, admin, f"gateway replica {index} admin (/metrics /readyz)"),
    )
    # HAProxy takes a stopped replica out of service: the fleet carries on without it.
    return Part(f"gateway-{index}", argv, listeners, expendable=True)


def _haproxy(plan: fc.FleetPlan, program: str) -> Part:
    host = connectable(plan.balancer_host)
    what = "HAProxy: clients connect here (TLS to a replica)"
    listener = Listener(host, plan.ports.balancer, what)
    return Part("haproxy", haproxy_argv(program, plan.haproxy_config), (listener,))


def _checked(path: Path, loader: Callable[[Path], T]) -> T:
    """``path`` loaded as its program will; ConfigError with the file named in each problem."""
    try:
        return loader(path)
    except ConfigError as exc:
        raise ConfigError([f"{path}: {problem}" for problem in exc.problems]) from None


def _mapping(doc: object, source: Path) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ConfigError([f"{source}: expected a mapping at the top level"])
    return doc


def _write_yaml(path: Path, doc: dict[str, Any]) -> None:
    header = "# Written by `cpr-gateway up --replicas`; rewritten at every start.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
