"""cpr-gateway: a drop-in CPR Direkte endpoint in front of the mainframe.

Consumers keep their clients; per operation, routing.yaml sends each request to the
mainframe or to new gRPC services, compares the two sides in the shadow, and switches
one operation at a time. The operator's commands are `serve`, `check-config`, `diff`,
`canary` and `audit`; docs/operations.md says how to run them. The development stack's
commands (`up`, `emulator`, `backend`, `lookup`, `traffic`, `bench` …) come with the project's
simulators.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gateway
from gateway.errors import ConfigError

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:  # argparse's class is generic to type checkers only
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
T = TypeVar("T")

#: Modules that only the simulators or one store need, and the extra that installs each.
_EXTRA_OF_MODULE = {
    "cryptography": "simulators",
    "tqdm": "simulators",
    "grpc_health": "simulators",
    "grpc_reflection": "simulators",
    "psycopg": "postgres",
}
#: Where a package beside the product adds its commands: each entry point is named after
#: its command and loads a function that adds that command's parser (see pyproject.toml).
COMMANDS_GROUP = "cpr_gateway.commands"
#: The routing.yaml that `diff` reads when it is given neither --config nor --store.
DEFAULT_CONFIG = Path("routing.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cpr-gateway` console script."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command_of(args_in)).parse_args(args_in)
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
    except ModuleNotFoundError as exc:
        extra = _EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        # A development command run where only the gateway is installed.
        print(f"cpr-gateway: needs {exc.name}: install 'cpr-gateway[{extra}]'", file=sys.stderr)
        return 2


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpr-gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for add in _PRODUCT_COMMANDS.values():
        add(sub)
    if command not in _PRODUCT_COMMANDS:
        for add in _extension_commands(command):
            add(sub)
    return parser


class _Version(argparse.Action):
    """``--version``, read from the installed distribution only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str) -> None:
        super().__init__(option_strings, dest, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        print(parser.prog, gateway.__version__)
        parser.exit()


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand argv names (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def _extension_commands(command: str | None) -> Iterator[Callable[[Subcommands], None]]:
    """The commands the packages beside the product add: only ``command``'s when it is one of
    them (so running one loads no other), every one otherwise (for help and for errors)."""
    from importlib import metadata

    found = metadata.entry_points(group=COMMANDS_GROUP)
    chosen = [ep for ep in found if ep.name == command] or list(found)
    for entry in sorted(chosen, key=lambda ep: ep.name):
        yield entry.load()


def _add_serve(sub: Subcommands) -> None:
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


def _add_check_config(sub: Subcommands) -> None:
    p = sub.add_parser("check-config", help="validate a routing.yaml, and show what it changes")
    p.add_argument("file", type=Path)
    p.add_argument("--against", type=Path, help="the routing.yaml in force, to compare with")
    p.add_argument(
        "--workers", type=int, default=1, help="also check that N `serve` workers can share it"
    )
    # For `serve --workers`, which binds the client port itself: print "HOST PORT", not "ok".
    p.add_argument("--print-listen", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=_run_check_config)


def _add_diff(sub: Subcommands) -> None:
    p = sub.add_parser("diff", help="the shadow comparison report: per operation and field")
    p.add_argument(
        "--config",
        type=Path,
        help="the routing.yaml whose shadowing.store to read (default: ./routing.yaml if any, "
        "else var/shadow.sqlite)",
    )
    p.add_argument("--store", help="a store file or postgresql:// DSN, instead of routing.yaml's")
    p.add_argument(
        "--key-file",
        type=Path,
        help="the shadow key that opens the stored values (default: routing.yaml's "
        "shadowing.key_file, else $CPR_GATEWAY_SHADOW_KEY; without: shown as encrypted)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run_diff)


def _add_canary(sub: Subcommands) -> None:
    p = sub.add_parser(
        "canary",
        help="the canary routes through the admin API: status, pause, resume, promote, rollback",
    )
    p.add_argument("verb", choices=("status", "pause", "resume", "promote", "rollback"))
    p.add_argument("route", nargs="?", help="the route to change (not for status)")
    p.add_argument("--reason", default="", help="why (pause and rollback; logged and kept)")
    p.add_argument("--json", action="store_true", help="the API's JSON instead of a table")
    p.add_argument("--admin", default=None, metavar="URL", help="default http://127.0.0.1:9100")
    p.add_argument("--token-file", type=Path, help="default: --config's admin.token_file")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default ./routing.yaml")
    p.set_defaults(handler=_run_canary)


def _add_audit(sub: Subcommands) -> None:
    p = sub.add_parser(
        "audit", help="the audit log of lookups: who looked up a person, whom a user looked up"
    )
    p.add_argument(
        "action", nargs="?", choices=("query", "verify"), default="query",
        help="query (the default) or verify: check every file's hash chain",
    )  # fmt: skip
    p.add_argument("--pnr", help="lookups of this person (searched as its pseudonym)")
    p.add_argument("--customer", help="lookups by this customer (KUNDENR)")
    p.add_argument("--user", help="lookups by this user (BRUGER-ID)")
    p.add_argument("--since", help="from this UTC date or time (2026-12-01T08:00) or age (24h)")
    p.add_argument("--directory", type=Path, help="default: --config's audit.directory")
    p.add_argument("--key-file", type=Path, help="default: --config's audit.key_file")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default ./routing.yaml")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.set_defaults(handler=_run_audit)


#: The operator's commands, by name, in the order --help lists them.
_PRODUCT_COMMANDS: dict[str, Callable[[Subcommands], None]] = {
    "serve": _add_serve,
    "check-config": _add_check_config,
    "diff": _add_diff,
    "canary": _add_canary,
    "audit": _add_audit,
}


def _run_check_config(args: argparse.Namespace) -> int:
    from gateway.config import diff_configs, load_routing
    from gateway.config.canary import describe
    from gateway.runtime.workers import check_workers

    configs = []
    for path in (args.file, args.against) if args.against else (args.file,):
        try:
            configs.append(load_routing(path))
            if path is args.file:
                check_workers(configs[-1], args.workers)
        except ConfigError as exc:
            return config_problems(path, exc)
    if args.print_listen:
        print(configs[0].listen.host, configs[0].listen.port)
        return 0
    print(f"{args.file}: ok")
    for route in configs[0].routes:
        if route.canary is not None:
            print(f"canary {route.name}: {route.primary} → {describe(route.canary)}")
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

    from gateway.app import run_gateway
    from gateway.config import load_routing
    from gateway.observe.logs import configure_logging
    from gateway.runtime.elders import Elders
    from gateway.runtime.workers import admin_port
    from gateway.sessions.peers import PeerDirectory

    configure_logging()
    try:
        config = load_routing(args.config)
        port, peers, elders = None, None, None
        if args.worker_index is not None:
            port = admin_port(config, args.worker_index)
            if args.sessions_dir is not None:
                peers = PeerDirectory(args.sessions_dir, args.worker_index)
                elders = Elders.attach(args.sessions_dir, args.worker_index)
        # Start-up can also fail on config: unreadable certificates, a port in use.
        listen_socket = None if args.listen_fd is None else socket.socket(fileno=args.listen_fd)
        run_loop(
            run_gateway(
                config,
                listen_socket=listen_socket,
                admin_port=port,
                peers=peers,
                elders=elders,
                settle_heap=True,
            )
        )
    except ConfigError as exc:
        return config_problems(args.config, exc)
    return 0


def _run_diff(args: argparse.Namespace) -> int:
    from gateway.shadow.report import main_diff

    store, key_file = args.store, args.key_file
    if store is None or key_file is None:
        try:
            configured, configured_key = _configured_store(args.config)
        except ConfigError as exc:
            if store is None:
                return config_problems(args.config or DEFAULT_CONFIG, exc)
            configured, configured_key = store, None  # --store needs no routing.yaml
        store, key_file = store or configured, key_file or configured_key
    return main_diff(store, args.json, key_file)


def _run_canary(args: argparse.Namespace) -> int:
    from gateway.server.api_client import DEFAULT_ADMIN, run_canary
    from gateway.server.tokens import read_tokens

    if (args.verb == "status") == (args.route is not None):
        print(
            f"cpr-gateway canary {args.verb}: "
            + ("takes no route" if args.verb == "status" else "needs a ROUTE"),
            file=sys.stderr,
        )
        return 2
    try:
        token = read_tokens(args.token_file or _configured_token_file(args.config)).first()
    except ConfigError as exc:
        config_problems("cpr-gateway canary", exc)
        return 2
    assert token is not None  # read_tokens refuses a file without one
    admin = args.admin or DEFAULT_ADMIN
    return run_loop(
        run_canary(admin, token, args.verb, args.route, reason=args.reason, as_json=args.json)
    )


def _run_audit(args: argparse.Namespace) -> int:
    from gateway.audit.command import AuditArgs, run_audit

    return run_audit(
        AuditArgs(
            args.action == "verify",
            args.config,
            args.directory,
            args.key_file,
            args.pnr,
            args.customer,
            args.user,
            args.since,
            args.json,
        )
    )


def _configured_token_file(config: Path) -> Path:
    """The admin.token_file ``config`` names; ConfigError when there is none to read."""
    from gateway.config import load_routing

    if not config.exists():
        raise ConfigError([f"no {config}: give --token-file, or --config naming admin.token_file"])
    path = load_routing(config).admin.token_file
    if path is None:
        raise ConfigError([f"{config}: admin.token_file is not set; give --token-file"])
    return path


def _configured_store(config: Path | None) -> tuple[str | Path, Path | None]:
    """The mismatch store ``config`` names (a file or a DSN) and its key file; without
    ``config``, those ./routing.yaml names, else the default file and no key file.
    ConfigError when it names no store."""
    from gateway.config import load_routing
    from gateway.shadow.store import DEFAULT_PATH

    if config is None and not DEFAULT_CONFIG.exists():
        return DEFAULT_PATH, None
    shadowing = load_routing(config or DEFAULT_CONFIG).shadowing
    if shadowing.store is None:
        raise ConfigError(["shadowing.store: not set, so no gateway keeps a mismatch store"])
    return shadowing.store, shadowing.key_file


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the chosen event loop (:mod:`gateway.runtime.loops`, imported only here:
    the ``serve --workers`` parent runs none and should not pay for one)."""
    from gateway.runtime.loops import chosen_loop, run

    try:
        name = chosen_loop()
    except ValueError as exc:  # a misspelt CPR_GATEWAY_LOOP: say so, no traceback
        main.close()
        raise SystemExit(f"cpr-gateway: {exc}") from None
    return run(main, name)


def config_problems(where: object, exc: ConfigError) -> int:
    """Print each path-qualified problem of a refused configuration; the exit status is 1."""
    for problem in exc.problems:
        print(f"{where}: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
