"""What `cpr-gateway audit` does: find lookups, or verify the chains (docs/audit.md).

The directory and key come from the options, else from routing.yaml's ``audit`` section.
A PNR given to search for is pseudonymised with the key and never printed back; a key
file that does not exist is an error here (a new key would match nothing).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.query import Query, find, render_json, render_text, since_time
from gateway.audit.verify import verify_directory
from gateway.config.audit import Audit
from gateway.errors import ConfigError
from gateway.shadow.pseudonym import Pseudonymiser, load_key

#: Exit statuses: found or whole; a chain broken; the command could not run as asked.
OK, BROKEN, USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class AuditArgs:
    """The command's options, as parsed by gateway.cli."""

    verify: bool
    config: Path
    directory: Path | None = None
    key_file: Path | None = None
    pnr: str | None = None
    customer: str | None = None
    user: str | None = None
    since: str | None = None
    as_json: bool = False


def run_audit(args: AuditArgs) -> int:
    """Run the command; prints results on stdout, problems on stderr."""
    try:
        if args.verify:
            return _verify(_directory(args))
        return _query(args)
    except (ConfigError, ValueError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        for problem in problems:
            print(f"cpr-gateway audit: {problem}", file=sys.stderr)
        return USAGE


def _query(args: AuditArgs) -> int:
    if args.pnr is None and args.customer is None and args.user is None:
        raise ValueError("give --pnr, --customer or --user (or verify)")
    pseudonym = None if args.pnr is None else _pseudonymiser(args).pnr(args.pnr)
    since = None if args.since is None else since_time(args.since)
    customer = None if args.customer is None else args.customer.strip()
    user = None if args.user is None else args.user.strip()  # as records keep them
    query = Query(pseudonym, customer, user, since)
    found = find(_directory(args), query)
    if found:
        print(render_json(found) if args.as_json else render_text(found))
    elif not args.as_json:
        print("no lookup in the audit log matches", file=sys.stderr)
    return OK


def _verify(directory: Path) -> int:
    reports = verify_directory(directory)
    if not reports:
        print(f"{directory}: no audit files", file=sys.stderr)
    for report in reports:
        state = "whole" if report.broken is None else f"BROKEN at {report.broken}"
        print(f"{report.writer}: {report.files} files, {report.records} records, chain {state}")
        for note in report.notes:
            print(f"  note: {note}")
    return BROKEN if any(report.broken for report in reports) else OK


def _directory(args: AuditArgs) -> Path:
    return args.directory or _configured(args).directory


def _pseudonymiser(args: AuditArgs) -> Pseudonymiser:
    path = args.key_file or _configured(args).key_file
    if not path.exists():
        raise ConfigError([f"audit key {path}: no such file (give --key-file)"])
    return Pseudonymiser(load_key(path, what="audit key"))


def _configured(args: AuditArgs) -> Audit:
    from gateway.config import load_routing  # noqa: PLC0415  (only without --directory)

    if not args.config.exists():
        raise ConfigError([f"no {args.config}: give --directory (and --key-file for --pnr)"])
    audit = load_routing(args.config).audit
    if audit is None:
        raise ConfigError([f"{args.config}: has no audit section; give --directory"])
    return audit
