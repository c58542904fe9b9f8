"""``python -m cpr_bench.hostile``: the hostile-session run on a stack of its own.

Starts the mainframe emulator and one gateway as processes (as ``make run`` starts them: TLS
from the development CA on both hops, the gateway's limits as the shipped routing.yaml has
them), on free loopback ports, with configs and logs in ``var/hostile/run-<time>/``; runs
:func:`cpr_bench.hostile_sessions.run_hostile` against it and prints the report. ``--port``
runs against a gateway already running instead (``make run``: port 5000, admin port 9100).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from cpr_bench.configs import TlsFiles, Via, emulator_yaml, gateway_yaml
from cpr_bench.deploy import data_files
from cpr_bench.hostile_sessions import Plan, Target, run_hostile
from cpr_bench.loadgen import raise_fd_limit
from cpr_bench.servers import LOOPBACK, Servers, cli, free_port, http_get
from cpr_devtools.client import Credentials, Endpoint
from cpr_devtools.pki import DevPki, ensure_dev_pki
from cpr_mainframe.register.generate import generate
from cpr_mainframe.register.store import Register
from gateway.tls import client_context

#: The demo user of the shipped emulator.yaml (synthetic).
DEMO_WHO = Credentials("PRIV", "0001", "DEMO0001")
DEMO_PASSWORD = "Demo#123"
#: The shipped routing.yaml's limits: the gateway is attacked as `make run` starts it.
_LIMITS = {"read_timeout": "10s", "max_connections": 2048, "grace_period": "10s"}
_PERSONS = 1000
_IN_FLIGHT = "cpr_gateway_connections_in_flight"
_REJECTED = "cpr_gateway_rejected_total"


async def in_flight(admin_port: int) -> int:
    """The gateway's client connections in flight, from its /metrics."""
    return sum(int(value) for _labels, value in await _samples(admin_port, _IN_FLIGHT))


async def rejected(admin_port: int) -> collections.Counter[str]:
    """Connections the gateway closed unanswered so far, by reason, from its /metrics."""
    counts: collections.Counter[str] = collections.Counter()
    for labels, value in await _samples(admin_port, _REJECTED):
        counts[labels.get("reason", "")] += int(value)
    return counts


async def _samples(admin_port: int, name: str) -> list[tuple[dict[str, str], float]]:
    _status, body = await http_get(admin_port, "/metrics")
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    ]


def residents(register: Path, count: int) -> tuple[str, ...]:
    """``count`` PNRs of residents (STATUS 01): full answers, 00."""
    opened = Register.open(register)
    try:
        return tuple(opened.pnrs(limit=count, status="01"))
    finally:
        opened.close()


@asynccontextmanager
async def own_stack(var: Path) -> AsyncIterator[tuple[int, int, Path, Path]]:
    """Emulator and gateway processes: (client port, admin port, CA, register)."""
    run_dir = var / "hostile" / f"run-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True, exist_ok=True)
    pki = ensure_dev_pki(var / "tls")
    register, _store = data_files(var / "bench", _PERSONS)
    if not register.exists():
        register.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(generate, register, _PERSONS, 1)
    servers = Servers(run_dir)
    try:
        emulator_port, port, admin = free_port(), free_port(), free_port()
        emulator_tls = TlsFiles(pki.cert("emulator"), pki.key("emulator"), pki.ca_cert)
        config = run_dir / "emulator.yaml"
        state = run_dir / "emulator-state.sqlite"
        config.write_text(emulator_yaml(emulator_port, emulator_tls, register, state))
        await servers.start("emulator", cli("emulator", "--config", str(config)), emulator_port,
                            [(emulator_port, None)])  # fmt: skip
        routing = run_dir / "routing.yaml"
        routing.write_text(_gateway_yaml(port, admin, pki.ca_cert, pki, emulator_port))
        await servers.start("gateway", cli("serve", "--config", str(routing)), port,
                            [(admin, "/readyz")])  # fmt: skip
        print(f"stack in {run_dir}: gateway {LOOPBACK}:{port} (admin {admin})", flush=True)
        yield port, admin, pki.ca_cert, register
    finally:
        await servers.aclose()


def _gateway_yaml(port: int, admin: int, ca: Path, pki: DevPki, emulator_port: int) -> str:
    """The benchmark's legacy gateway with TLS on both hops, and the shipped file's limits."""
    tls = TlsFiles(pki.cert("gateway"), pki.key("gateway"), ca)
    raw = yaml.safe_load(
        gateway_yaml(
            Via.LEGACY, port=port, admin_port=admin, tls=tls, emulator_port=emulator_port,
            emulator_ca=ca, modern_port=0,
        )
    )  # fmt: skip
    raw["limits"] = dict(_LIMITS)
    return yaml.safe_dump(raw, sort_keys=False)


async def _main(args: argparse.Namespace) -> int:
    plan = Plan(connections=args.connections, concurrency=args.concurrency, seed=args.seed)
    if args.port:
        endpoint = Endpoint(LOOPBACK, args.port, client_context(args.ca), "localhost")
        pnrs = residents(args.register, args.pnrs)
        admin_port = args.admin_port
        target = Target(
            endpoint, DEMO_WHO, DEMO_PASSWORD, pnrs, lambda: in_flight(admin_port),
            lambda: rejected(admin_port),
        )  # fmt: skip
        report = await run_hostile(target, plan)
    else:
        async with own_stack(args.var.resolve()) as (port, admin, ca, register):
            endpoint = Endpoint(LOOPBACK, port, client_context(ca), "localhost")
            target = Target(endpoint, DEMO_WHO, DEMO_PASSWORD, residents(register, args.pnrs),
                            lambda: in_flight(admin), lambda: rejected(admin))  # fmt: skip
            report = await run_hostile(target, plan)
    print("\n".join(report.lines()))
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run, print the report; 0 when the gateway kept every promise."""
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.hostile", description=__doc__)
    defaults = Plan()
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--pnrs", type=int, default=50, help="distinct persons looked up")
    parser.add_argument("--var", type=Path, default=Path("var"))
    parser.add_argument("--port", type=int, help="a running gateway's client port (make run: 5000)")
    parser.add_argument("--admin-port", type=int, default=9100, help="with --port")
    parser.add_argument("--ca", type=Path, default=Path("var/tls/ca.crt"), help="with --port")
    parser.add_argument(
        "--register", type=Path, default=Path("var/register.sqlite"), help="with --port"
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
