"""`cpr-gateway up`: the whole default stack on one machine, in the foreground.

Prepares var/ (certificates, register, the services' store) and runs the emulator, the
reference services and the gateway as separate processes under :mod:`.supervisor`.
``--replicas N`` (N ≥ 2) runs the fleet instead (:mod:`.fleet`), on the same var/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cpr_devtools.migration import migrate_register
from cpr_devtools.pki import GATEWAY_CLIENT, DevPki, ensure_dev_pki
from cpr_devtools.supervisor import Listener, Part, run_stack
from cpr_mainframe.config import load_config
from cpr_mainframe.register.generate import generate
from cpr_services.store import ModernStore
from gateway.config import load_routing
from gateway.server.tokens import create_token_file
from gateway.storage.files import private_directory

#: Where `make run` serves the gRPC services; routing.yaml's grpc backend points here.
MODERN_PORT = 50051
#: Servers with a development certificate under var/tls/: every hop is TLS.
SERVERS = ("emulator", "gateway", "services")


async def run_up(args: argparse.Namespace) -> int:
    """Make what the default stack needs under var/, then run it until Ctrl-C."""
    var: Path = args.var
    prepare_var(var, args.persons)
    admin = load_routing(args.routing).admin
    ensure_admin_token(admin.token_file, f"http://{connectable(admin.host)}:{admin.port}/")
    modern = var / "modern.sqlite"
    if not modern.exists():
        print("migrating the register into the modern store…", flush=True)
        migrate_register(var / "register.sqlite", modern, progress=True)
    elif stale := _stale_messages(modern):
        # Written by another version of the services' message format: correct but slow.
        print(f"{stale} stored persons are in an older message format: migrating…", flush=True)
        migrate_register(var / "register.sqlite", modern, progress=True)
    return await run_stack(_parts(args.routing, args.emulator_config, modern, args.drift))


def prepare_var(var: Path, persons: int) -> None:
    """What every stack needs under var/ (made 0700: it holds the register, stores and
    keys): the development CA and certificates, a register."""
    private_directory(var)
    pki = ensure_dev_pki(var / "tls", servers=SERVERS, clients=(GATEWAY_CLIENT,))
    print(f"development CA (trust this in clients): {pki.ca_cert.resolve()}", flush=True)
    register = var / "register.sqlite"
    if not register.exists():
        print(f"generating a synthetic register of {persons} persons…", flush=True)
        generate(register, count=persons, seed=1, progress=True)


def ensure_admin_token(path: Path | None, dashboard: str) -> None:
    """Create the admin API's token file (mode 600) if routing.yaml names one that is missing,
    and say where it is: the dashboard and `cpr-gateway canary` need it."""
    if path is None:
        print("admin API: routing.yaml names no admin.token_file, so it refuses every call")
        return
    if create_token_file(path):
        print(f"created the admin token (mode 600): {path.resolve()}", flush=True)
    print(f"dashboard: {dashboard} (token in {path.resolve()})", flush=True)


def _stale_messages(modern: Path) -> int:
    store = ModernStore.open(modern)
    try:
        return store.stale_messages()
    finally:
        store.close()


def _parts(routing: Path, emulator_config: Path, modern: Path, drift: str) -> list[Part]:
    gateway = load_routing(routing)
    emulator = load_config(emulator_config)
    cli = (sys.executable, "-m", "gateway.cli")
    return [
        Part(
            "emulator",
            (*cli, "emulator", "--config", str(emulator_config)),
            (
                Listener(
                    connectable(emulator.listen.host),
                    emulator.listen.port,
                    "mainframe emulator (CPR Direkte)",
                ),
            ),
        ),
        Part(
            "backend",
            (
                *cli,
                "backend",
                "--config",
                str(emulator_config),
                "--store",
                str(modern),
                "--drift",
                drift,
                *services_tls(DevPki(modern.parent / "tls")),
            ),
            (Listener("127.0.0.1", MODERN_PORT, "new gRPC services (cpr.v1)"),),
            # Stopping the new side is how one watches the canary roll back (docs/canary.md):
            # the gateway answers 09 for it meanwhile, the rest of the stack carries on.
            expendable=True,
        ),
        Part(
            "gateway",
            (*cli, "serve", "--config", str(routing)),
            (
                Listener(
                    connectable(gateway.listen.host),
                    gateway.listen.port,
                    "gateway (CPR Direkte)",
                ),
                Listener(
                    connectable(gateway.admin.host),
                    gateway.admin.port,
                    "gateway admin (/metrics, /api/v1, dashboard)",
                ),
            ),
        ),
    ]


def services_tls(pki: DevPki) -> tuple[str, ...]:
    """`cpr-gateway backend` arguments: serve TLS with the services' certificate, require
    client certificates of the development CA, and take the gateway's as its identity."""
    return (
        *("--tls-cert", str(pki.cert("services")), "--tls-key", str(pki.key("services"))),
        *("--client-ca", str(pki.ca_cert), "--gateway-identity", GATEWAY_CLIENT),
    )


def connectable(host: str) -> str:
    """A wildcard listen address is reached on loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
