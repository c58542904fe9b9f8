"""Composition root: argv → config → build everything → run.

Subcommands import what they need lazily, so `check-config` or `data pnrs` start
fast and never pay for the servers they do not run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import ConfigError

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cpr-gateway` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`cpr-gateway data pnrs | head`): stop quietly, as Unix tools
        # do, and keep Python from reporting the same error again when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpr-gateway", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_up(sub)
    _add_serve(sub)
    _add_emulator(sub)
    _add_backend(sub)
    _add_migrate(sub)
    _add_check_config(sub)
    _add_data(sub)
    _add_lookup(sub)
    _add_diff(sub)
    _add_traffic(sub)
    _add_certs(sub)
    _add_bench(sub)
    return parser


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="run the whole default stack in the foreground")
    p.add_argument("--routing", type=Path, default=Path("routing.yaml"))
    p.add_argument("--emulator-config", type=Path, default=Path("emulator.yaml"))
    p.add_argument("--var", type=Path, default=Path("var"))
    p.add_argument("--persons", type=int, default=10_000, help="register size if none exists")
    p.set_defaults(handler=_run_up)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--config", type=Path, default=Path("routing.yaml"))
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes accepting on one client socket; worker i's admin is port + i",
    )
    # Set by --workers on each worker it starts; not for operators.
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sessions-dir", type=Path, help=argparse.SUPPRESS)
    p.set_defaults(handler=_run_serve)


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cpr_bench.cli import add_arguments

    p = sub.add_parser("bench", help="measure the gateway against direct and HAProxy")
    add_arguments(p)
    p.set_defaults(handler=_run_bench)


def _add_emulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("emulator", help="run the mainframe emulator")
    p.add_argument("--config", type=Path, default=Path("emulator.yaml"))
    p.set_defaults(handler=_run_emulator)


def _add_backend(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backend", help="run the new gRPC services")
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
    p.set_defaults(handler=_run_backend)


def _add_migrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="copy the legacy register into the modern store")
    p.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    p.add_argument("--store", default="var/modern.sqlite", help="SQLite file or postgresql:// DSN")
    p.set_defaults(handler=_run_migrate)


def _add_check_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a routing.yaml, and show what it changes")
    p.add_argument("file", type=Path)
    p.add_argument("--against", type=Path, help="the routing.yaml in force, to compare with")
    p.add_argument(
        "--workers", type=int, default=1, help="also check that N `serve` workers can share it"
    )
    # For `serve --workers`, which binds the client port itself: print "HOST PORT", not "ok".
    p.add_argument("--print-listen", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=_run_check_config)


def _add_data(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("data", help="the synthetic register")
    data = p.add_subparsers(required=True, metavar="ACTION")
    gen = data.add_parser("generate", help="build a synthetic register")
    gen.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    gen.add_argument("--count", type=int, default=10_000)
    gen.add_argument("--seed", type=int, default=1)
    gen.set_defaults(handler=_run_generate)
    pnrs = data.add_parser("pnrs", help="print PNRs of the register, one per line")
    pnrs.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    pnrs.add_argument("--limit", type=int, default=10)
    pnrs.add_argument("--status", help="only persons with this STATUS, e.g. 80")
    pnrs.set_defaults(handler=_run_pnrs)


def _add_lookup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_diff(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diff", help="the shadow comparison report: per operation and field")
    p.add_argument("--store", type=Path, default=Path("var/shadow.sqlite"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run_diff)


def _add_traffic(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_certs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("certs", help="create the development CA and certificates")
    p.add_argument("--dir", type=Path, default=Path("var/tls"))
    p.set_defaults(handler=_run_certs)


def _run_certs(args: argparse.Namespace) -> int:
    from cpr_devtools.pki import ensure_dev_pki

    pki = ensure_dev_pki(args.dir)
    print(f"development CA: {pki.ca_cert}")
    return 0


def _run_generate(args: argparse.Namespace) -> int:
    from cpr_mainframe.register.generate import generate

    generate(args.register, count=args.count, seed=args.seed, progress=True)
    print(f"register of {args.count} persons written to {args.register}")
    return 0


def _run_pnrs(args: argparse.Namespace) -> int:
    from cpr_mainframe.register.store import Register

    if not args.register.exists():
        print(f"no register at {args.register}; run `cpr-gateway data generate`", file=sys.stderr)
        return 2
    register = Register.open(args.register)
    try:
        for pnr in register.pnrs(limit=args.limit, status=args.status):
            print(pnr)
    finally:
        register.close()
    return 0


def _run_check_config(args: argparse.Namespace) -> int:
    import gateway.backends  # noqa: F401  (every backend kind registers its config parser)
    from gateway.config import diff_configs, load_routing
    from gateway.runtime.workers import check_workers

    configs = []
    for path in (args.file, args.against) if args.against else (args.file,):
        try:
            configs.append(load_routing(path))
            if path is args.file:
                check_workers(configs[-1], args.workers)
        except ConfigError as exc:
            return _config_problems(path, exc)
    if args.print_listen:
        print(configs[0].listen.host, configs[0].listen.port)
        return 0
    print(f"{args.file}: ok")
    if args.against:
        changes = diff_configs(configs[1], configs[0])
        print("\n".join(changes) if changes else f"no changes against {args.against}")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    if args.workers != 1:
        # The parent only supervises: no gateway code, no event loop (gateway.runtime.workers).
        from gateway.runtime.workers import run_workers

        return run_workers(args.config, args.workers)
    import socket

    import gateway.backends  # noqa: F401  (every backend kind registers its config parser)
    from gateway.app import run_gateway
    from gateway.config import load_routing
    from gateway.observe.logs import configure_logging
    from gateway.runtime.workers import admin_port
    from gateway.sessions.peers import PeerDirectory

    configure_logging()
    try:
        config = load_routing(args.config)
        port, peers = None, None
        if args.worker_index is not None:
            port = admin_port(config, args.worker_index)
            if args.sessions_dir is not None:
                peers = PeerDirectory(args.sessions_dir, args.worker_index)
        # Start-up can also fail on config: unreadable certificates, a port in use.
        listen_socket = None if args.listen_fd is None else socket.socket(fileno=args.listen_fd)
        run_loop(
            run_gateway(
                config, listen_socket=listen_socket, admin_port=port, peers=peers, settle_heap=True
            )
        )
    except ConfigError as exc:
        return _config_problems(args.config, exc)
    return 0


def _run_emulator(args: argparse.Namespace) -> int:
    from cpr_mainframe.run import run_emulator
    from gateway.observe.logs import configure_logging

    configure_logging()
    try:
        run_loop(run_emulator(args.config))
    except ConfigError as exc:
        return _config_problems(args.config, exc)
    return 0


def _run_backend(args: argparse.Namespace) -> int:
    from cpr_devtools.backend import run_backend
    from gateway.observe.logs import configure_logging

    configure_logging()
    try:
        return run_loop(run_backend(args))
    except ConfigError as exc:
        return _config_problems("backend", exc)


def _run_migrate(args: argparse.Namespace) -> int:
    from cpr_services.migrate import migrate
    from gateway.storage.postgres import redact

    try:
        report = migrate(args.register, args.store, progress=True)
    except ConfigError as exc:
        return _config_problems("migrate", exc)
    print(
        f"read {report.read}: {report.inserted} inserted, {report.updated} updated, "
        f"{report.unchanged} unchanged; {report.stored} persons in {redact(args.store)} "
        f"(schema {report.schema_version})"
    )
    return 0


def _run_diff(args: argparse.Namespace) -> int:
    from gateway.shadow.report import main_diff

    return main_diff(args.store, args.json)


def _run_traffic(args: argparse.Namespace) -> int:
    from cpr_devtools.traffic import run_traffic_command

    return run_loop(run_traffic_command(args))


def _run_lookup(args: argparse.Namespace) -> int:
    from cpr_devtools.lookup import run_lookup

    return run_loop(run_lookup(args))


def _run_bench(args: argparse.Namespace) -> int:
    from cpr_bench.cli import run

    return run(args)


def _run_up(args: argparse.Namespace) -> int:
    from cpr_devtools.up import run_up

    return run_loop(run_up(args))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the chosen event loop (:mod:`gateway.runtime.loops`, imported only here: the
    ``serve --workers`` parent runs none and should not pay for one)."""
    from gateway.runtime.loops import chosen_loop, run

    try:
        name = chosen_loop()
    except ValueError as exc:  # a misspelt CPR_GATEWAY_LOOP: say so, no traceback
        main.close()
        raise SystemExit(f"cpr-gateway: {exc}") from None
    return run(main, name)


def _config_problems(where: object, exc: ConfigError) -> int:
    """Print each path-qualified problem of a refused configuration; the exit status is 1."""
    for problem in exc.problems:
        print(f"{where}: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
