"""The development tools' commands in `cpr-gateway` (registered as entry points in
pyproject.toml): the whole stack, the reference services, the migration, a client, the CA.

Only argparse here, so that listing commands stays cheap; each handler imports what it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cpr_services.drift import DEMO_DRIFT, Drift
from gateway.cli import config_problems, run_loop
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.cli import Subcommands


def add_up(sub: Subcommands) -> None:
    """`cpr-gateway up`: every part of the default stack, in the foreground."""
    p = sub.add_parser("up", help="run the whole default stack in the foreground (make run)")
    p.add_argument("--routing", type=Path, default=Path("routing.yaml"))
    p.add_argument("--emulator-config", type=Path, default=Path("emulator.yaml"))
    p.add_argument("--var", type=Path, default=Path("var"))
    p.add_argument("--persons", type=int, default=10_000, help="register size if none exists")
    p.add_argument(
        "--replicas",
        type=_replicas,
        default=1,
        help="N ≥ 2: the fleet, N gateways behind HAProxy with Redis and PostgreSQL (make fleet)",
    )
    p.add_argument(
        "--drift",
        type=_drift,
        default=DEMO_DRIFT,
        help=f"how the reference services drift from the register (default: {DEMO_DRIFT});"
        " 'none' for services that answer as the mainframe does (docs/canary.md)",
    )
    p.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="added to every port of the fleet, to run one beside another (tests)",
    )
    p.set_defaults(handler=_run_up)


def _drift(text: str) -> str:
    """A drift the services accept (``none``: no drift), checked before anything starts."""
    text = "" if text == "none" else text
    try:
        Drift.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _replicas(text: str) -> int:
    """1 (the default stack) or more (the fleet)."""
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"at least 1, got {count}")
    return count


def add_backend(sub: Subcommands) -> None:
    """`cpr-gateway backend`: the reference gRPC services."""
    p = sub.add_parser("backend", help="run the reference gRPC services (development stack)")
    p.add_argument("--config", type=Path, default=Path("emulator.yaml"), help="customers, users")
    p.add_argument("--store", default="var/modern.sqlite", help="SQLite file or postgresql:// DSN")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--delay", type=float, default=0.0, help="seconds added to every call")
    p.add_argument(
        "--drift",
        default="",
        help="realistic drift, e.g. standardadr_2023,stale_address=0.1,missing_record=050",
    )
    p.add_argument(
        "--trusted-gateways",
        default="",
        metavar="CIDR[,CIDR]",
        help="callers whose x-cpr-client-address the allow-lists use (default: none)",
    )
    add_service_tls(p)
    p.set_defaults(handler=_run_backend)


def add_service_tls(p: argparse.ArgumentParser) -> None:
    """The services' TLS: certificate and key, the client CA (mutual TLS) and the gateway."""
    p.add_argument("--tls-cert", type=Path, help="serve TLS with this certificate (and --tls-key)")
    p.add_argument("--tls-key", type=Path, help="the certificate's private key")
    p.add_argument(
        "--client-ca", type=Path, help="require client certificates signed by this CA (mTLS)"
    )
    p.add_argument(
        "--gateway-identity",
        action="append",
        default=[],
        metavar="NAME",
        help="a client certificate common name that is the gateway (repeatable; needs --client-ca)",
    )


def add_migrate(sub: Subcommands) -> None:
    """`cpr-gateway migrate`: the register copied into the reference services' store."""
    p = sub.add_parser("migrate", help="copy the synthetic register into the services' store")
    p.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    p.add_argument("--store", default="var/modern.sqlite", help="SQLite file or postgresql:// DSN")
    p.set_defaults(handler=_run_migrate)


def add_lookup(sub: Subcommands) -> None:
    """`cpr-gateway lookup`: one logon and one lookup, like an existing client."""
    p = sub.add_parser("lookup", help="logon and look up one person like an existing client")
    p.add_argument("--pnr", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--ca", type=Path, default=Path("var/tls/ca.crt"))
    p.add_argument("--plaintext", action="store_true")
    p.add_argument("--transaction", default="PRIV")
    p.add_argument("--customer", default="0001")
    p.add_argument("--user", default="DEMO0001")
    p.add_argument("--password", default="Demo#123")
    p.set_defaults(handler=_run_lookup)


def add_traffic(sub: Subcommands) -> None:
    """`cpr-gateway traffic`: realistic lookups at a rate, like existing clients."""
    p = sub.add_parser("traffic", help="replay realistic lookups like existing clients")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--ca", type=Path, default=Path("var/tls/ca.crt"))
    p.add_argument("--plaintext", action="store_true")
    p.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    p.add_argument("--count", type=int, default=200, help="lookups to send")
    p.add_argument("--rate", type=float, default=50.0, help="lookups per second")
    p.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(handler=_run_traffic)


def add_certs(sub: Subcommands) -> None:
    """`cpr-gateway certs`: the development CA and certificates."""
    p = sub.add_parser("certs", help="create the development CA and certificates")
    p.add_argument("--dir", type=Path, default=Path("var/tls"))
    p.set_defaults(handler=_run_certs)


def _run_up(args: argparse.Namespace) -> int:
    if args.replicas > 1:
        from cpr_devtools.fleet import run_fleet_up as run
    else:
        from cpr_devtools.up import run_up as run
    try:
        return run_loop(run(args))
    except ConfigError as exc:
        return config_problems("up", exc)


def _run_backend(args: argparse.Namespace) -> int:
    from cpr_devtools.backend import run_backend
    from gateway.observe.logs import configure_logging

    configure_logging()
    try:
        return run_loop(run_backend(args))
    except ConfigError as exc:
        return config_problems("backend", exc)


def _run_migrate(args: argparse.Namespace) -> int:
    from cpr_devtools.migration import migrate_register
    from gateway.storage.postgres import redact

    try:
        report = migrate_register(args.register, args.store, progress=True)
    except ConfigError as exc:
        return config_problems("migrate", exc)
    print(
        f"read {report.read}: {report.inserted} inserted, {report.updated} updated, "
        f"{report.unchanged} unchanged; {report.stored} persons in {redact(args.store)} "
        f"(schema {report.schema_version})"
    )
    return 0


def _run_lookup(args: argparse.Namespace) -> int:
    from cpr_devtools.lookup import run_lookup

    return run_loop(run_lookup(args))


def _run_traffic(args: argparse.Namespace) -> int:
    from cpr_devtools.traffic import run_traffic_command

    return run_loop(run_traffic_command(args))


def _run_certs(args: argparse.Namespace) -> int:
    from cpr_devtools.pki import GATEWAY_CLIENT, ensure_dev_pki
    from cpr_devtools.up import SERVERS

    pki = ensure_dev_pki(args.dir, servers=SERVERS, clients=(GATEWAY_CLIENT,))
    print(f"development CA: {pki.ca_cert}")
    return 0
