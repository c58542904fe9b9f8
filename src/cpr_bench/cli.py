"""The command line of `cpr-gateway bench` (also `python -m cpr_bench`).

Only argparse here, so that building the `cpr-gateway` parser stays cheap; the
handler imports the benchmark itself.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cpr_bench.scenarios import Settings

#: Options that map one-to-one to :class:`cpr_bench.scenarios.Settings` fields.
_SIZES = (
    ("--duration", "duration_s", float, "seconds measured per scenario and round"),
    ("--warmup", "warmup_s", float, "seconds before each measurement that are not counted"),
    ("--rounds", "rounds", int, "interleaved rounds"),
    ("--light-rate", "light_rate", float, "open loop that nothing saturates: lookups/s (P5)"),
    ("--tls-rate", "tls_rate", float, "open loop with TLS clients: lookups/s (P1)"),
    ("--shadow-rate", "shadow_rate", float, "open loop, shadow on and off: lookups/s (P4)"),
    ("--plain-rate", "plain_rate", float, "open loop, plaintext clients: lookups/s (P3)"),
    ("--concurrency", "concurrency", int, "closed loop: clients at once (P2)"),
    ("--hold", "hold", int, "connections held open at once (P6)"),
    ("--hold-seconds", "hold_s", float, "how long they are held"),
    ("--workers", "workers", int, "gateway worker processes and HAProxy threads"),
    ("--generators", "generators", int, "load generator processes (TLS clients)"),
    ("--plain-generators", "plain_generators", int, "load generator processes (plaintext)"),
    ("--persons", "persons", int, "persons in the synthetic register"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cpr-gateway bench`; defaults are the full benchmark."""
    parser.add_argument("--var", type=Path, default=Path("var"), help="data and results go here")
    for flag, _name, kind, text in _SIZES:
        parser.add_argument(flag, type=kind, help=f"{text} (default: full benchmark)")
    parser.add_argument(
        "--phase", action="append", default=[], help="run only this phase (repeatable)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run of every mode: checks that it works"
    )
    parser.add_argument(
        "--audit", action="store_true", help="every gateway keeps the audit log (its cost)"
    )
    parser.add_argument(
        "--request-lines",
        choices=("all", "errors"),
        default="all",
        help="every gateway's logging.requests (errors: no line per answered request, as"
        " HAProxy logs none)",
    )
    parser.add_argument(
        "--update-docs",
        type=Path,
        metavar="MD",
        help="put the table into this file's bench section",
    )


def add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`cpr-gateway bench` (an entry point in pyproject.toml)."""
    p = sub.add_parser("bench", help="measure the gateway against direct and HAProxy")
    add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark as ``args`` say; print the table."""
    # Imported here, not at the top: building the `cpr-gateway` parser must stay cheap.
    from cpr_bench.admission import ADMISSION_PHASES  # noqa: PLC0415
    from cpr_bench.run import run_bench  # noqa: PLC0415
    from cpr_bench.scenarios import smoke_phases  # noqa: PLC0415
    from gateway.runtime.loops import run as run_loop  # noqa: PLC0415

    if args.phase and set(args.phase) <= set(ADMISSION_PHASES):
        return _run_admission(args)
    try:
        settings = settings_from(args)
        plan = smoke_phases(settings) if args.smoke else None
        outcome = run_loop(run_bench(settings, args.var.resolve(), plan, args.update_docs))
    except ValueError as exc:  # sizes that cannot work together, an unknown phase
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print()
    print(outcome.markdown)
    print(f"written: {outcome.json_path} and {outcome.markdown_path}")
    return 0


def _run_admission(args: argparse.Namespace) -> int:
    """The admission phases (cpr_bench.admission): a gateway with the product's limits."""
    from cpr_bench.admission import AdmissionSettings, run_admission  # noqa: PLC0415
    from gateway.runtime.loops import run as run_loop  # noqa: PLC0415

    sizes = {
        name: value
        for name, value in (
            ("duration_s", args.duration),
            ("workers", args.workers),
            ("generators", args.generators),
            ("persons", args.persons),
        )
        if value is not None
    }
    settings = AdmissionSettings(**sizes)
    print(f"written: {run_loop(run_admission(settings, args.var.resolve(), args.phase))}")
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    """The full benchmark's (or the smoke run's) sizes with the options given."""
    from cpr_bench.scenarios import SMOKE, Settings  # noqa: PLC0415  (see run)

    base = SMOKE if args.smoke else Settings()
    overrides = {
        field: value
        for flag, field, _kind, _text in _SIZES
        if (value := getattr(args, flag.lstrip("-").replace("-", "_"))) is not None
    }
    return replace(
        base,
        **overrides,
        phases=tuple(args.phase),
        audit=args.audit,
        request_lines=args.request_lines,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m cpr_bench`."""
    parser = argparse.ArgumentParser(prog="python -m cpr_bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
