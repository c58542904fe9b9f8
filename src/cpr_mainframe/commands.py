"""The emulator's commands in `cpr-gateway` (registered as entry points in pyproject.toml).

Only argparse here, so that listing commands stays cheap; each handler imports what it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli import config_problems, run_loop
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.cli import Subcommands


def add_emulator(sub: Subcommands) -> None:
    """`cpr-gateway emulator`: the mainframe emulator in the foreground."""
    p = sub.add_parser("emulator", help="run the mainframe emulator (development stack)")
    p.add_argument("--config", type=Path, default=Path("emulator.yaml"))
    p.set_defaults(handler=_run_emulator)


def add_data(sub: Subcommands) -> None:
    """`cpr-gateway data generate|pnrs`: the synthetic register."""
    p = sub.add_parser("data", help="the synthetic register (development stack)")
    data = p.add_subparsers(required=True, metavar="ACTION")
    gen = data.add_parser("generate", help="build a synthetic register")
    gen.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    gen.add_argument("--count", type=int, default=10_000)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument(
        "--quirks",
        type=float,
        default=None,
        metavar="SHARE",
        help="share of persons carrying a quirk of the real mainframe, 0-1 (default 0.03)",
    )
    gen.set_defaults(handler=_run_generate)
    pnrs = data.add_parser("pnrs", help="print PNRs of the register, one per line")
    pnrs.add_argument("--register", type=Path, default=Path("var/register.sqlite"))
    pnrs.add_argument("--limit", type=int, default=10)
    pnrs.add_argument("--status", help="only persons with this STATUS, e.g. 80")
    pnrs.set_defaults(handler=_run_pnrs)


def _run_emulator(args: argparse.Namespace) -> int:
    from cpr_mainframe.run import run_emulator
    from gateway.observe.logs import configure_logging

    configure_logging()
    try:
        run_loop(run_emulator(args.config))
    except ConfigError as exc:
        return config_problems(args.config, exc)
    return 0


def _run_generate(args: argparse.Namespace) -> int:
    from cpr_mainframe.register import quirks
    from cpr_mainframe.register.generate import generate

    share = quirks.DEFAULT_SHARE if args.quirks is None else args.quirks
    generate(args.register, count=args.count, seed=args.seed, progress=True, quirk_share=share)
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
