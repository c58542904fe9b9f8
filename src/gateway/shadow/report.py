"""The parity report behind ``cpr-gateway diff``: verdicts per route, operation and field.

:func:`build_report` reads the mismatch store's counters (exact, never pruned)
and its newest example rows; :func:`render_text` and :func:`render_json` show
the result. Each route is judged with the thresholds it last ran with (see
:meth:`MismatchStore.set_thresholds`), unless the caller passes others. Values
in the store are already redacted, so nothing here sees a PNR; they are sealed,
so the examples show them only to a reader with the shadow key, and
``(encrypted; no key)`` to any other.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.comparison import FieldKey, Thresholds, Verdict
from gateway.errors import GatewayError
from gateway.shadow.noise import FieldStats, OperationStats, Tally, field_verdict, verdict
from gateway.shadow.pseudonym import KEY_ENV, load_key
from gateway.shadow.sealing import Sealer
from gateway.shadow.store import Example, MismatchStore, Target
from gateway.storage.database import is_dsn

#: Examples shown per field: enough to see the pattern, few enough to read.
EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class FieldReport:
    """One field that differed at least once, against the candidate or in noise."""

    key: FieldKey
    stats: FieldStats
    verdict: Verdict
    examples: tuple[Example, ...]


@dataclass(frozen=True, slots=True)
class OperationReport:
    """One candidate backend on one route, for one operation."""

    route: str
    backend: str
    operation: str
    requests: OperationStats
    verdict: Verdict
    thresholds: Thresholds
    #: Every field compared at least once; those not in ``fields`` never differed.
    fields_compared: int
    fields: tuple[FieldReport, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``cpr-gateway diff`` shows."""

    operations: tuple[OperationReport, ...]
    rows_kept: int


def build_report(
    store: MismatchStore, thresholds: Mapping[str, Thresholds] | None = None
) -> Report:
    """The report of everything in ``store``; ``thresholds`` overrides routes' stored ones."""
    tallies: dict[tuple[str, str], Tally] = {}
    operations: list[OperationReport] = []
    for target in store.targets():
        pair = (target.route, target.backend)
        if pair not in tallies:
            tallies[pair] = store.tally(*pair)
        given = (thresholds or {}).get(target.route)
        limits = given if given is not None else store.thresholds(target.route)
        operations.append(_operation(store, target, tallies[pair], limits))
    return Report(tuple(operations), store.row_count())


def _operation(
    store: MismatchStore, target: Target, tally: Tally, thresholds: Thresholds
) -> OperationReport:
    mine = {k: s for k, s in tally.fields.items() if k.operation == target.operation}
    fields = [
        FieldReport(
            key,
            stats,
            field_verdict(stats, thresholds),
            tuple(store.examples(target.route, target.backend, key, EXAMPLES)),
        )
        for key, stats in mine.items()
        if stats.differs or stats.noise_differs
    ]
    fields.sort(key=lambda f: (f.verdict is not Verdict.DIFFERS, -f.stats.rate, str(f.key)))
    return OperationReport(
        route=target.route,
        backend=target.backend,
        operation=target.operation,
        requests=tally.operations.get(target.operation, OperationStats()),
        verdict=verdict(tally, target.operation, thresholds),
        thresholds=thresholds,
        fields_compared=sum(1 for stats in mine.values() if stats.samples),
        fields=tuple(fields),
    )


# -- text ---------------------------------------------------------------------------------------

_COLUMNS = f"{'field':<40} {'samples':>8} {'differs':>8} {'rate':>8} {'noise':>8} {'noise n':>8}"


def render_text(report: Report) -> str:
    """The report for a terminal."""
    if not report.operations:
        return "No shadow comparisons recorded yet.\n"
    lines = [f"Shadow comparisons ({report.rows_kept} example rows kept)"]
    for op in report.operations:
        lines += ["", *_operation_lines(op)]
    return "\n".join(lines) + "\n"


def _operation_lines(op: OperationReport) -> list[str]:
    r, t = op.requests, op.thresholds
    lines = [
        f"route {op.route}, {op.operation}: {op.backend} against the primary: "
        f"{op.verdict.value.upper()}",
        f"  {r.compared} requests compared, {r.differing} differing"
        f" ({_share(r.differing, r.compared)}); {r.noise_compared} noise comparisons",
        f"  thresholds: min_samples {t.min_samples}, max_excess_rate {t.max_excess_rate:.2%}, "
        f"noise_min_samples {t.noise_min_samples}",
    ]
    if op.fields:
        lines.append(f"  {_COLUMNS}  verdict")
    for f in op.fields:
        s = f.stats
        lines.append(
            f"  {f.key!s:<40} {s.samples:>8} {s.differs:>8} {s.rate:>8.2%} {s.noise_rate:>8.2%}"
            f" {s.noise_samples:>8}  {f.verdict.value}"
        )
        lines += [
            f"      {_values(e)}  ({e.primary_backend}, {e.subject or 'no PNR'})"
            for e in f.examples
        ]
    quiet = op.fields_compared - sum(1 for f in op.fields if f.stats.differs)
    lines.append(f"  {quiet} fields compared without a difference from the candidate")
    return lines


def _values(example: Example) -> str:
    """Both values, quoted; or once what stands for both when they could not be opened."""
    if not example.readable:
        return example.primary
    return f"{example.primary!r} → {example.candidate!r}"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


# -- JSON ---------------------------------------------------------------------------------------


def render_json(report: Report) -> str:
    """The report as JSON (stable key order), for scripts and dashboards."""
    body = {
        "rows_kept": report.rows_kept,
        "operations": [_operation_json(op) for op in report.operations],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def _operation_json(op: OperationReport) -> dict[str, object]:
    r, t = op.requests, op.thresholds
    return {
        "route": op.route,
        "backend": op.backend,
        "operation": op.operation,
        "verdict": op.verdict.value,
        "requests": {
            "compared": r.compared,
            "differing": r.differing,
            "noise_compared": r.noise_compared,
            "noise_differing": r.noise_differing,
        },
        "thresholds": {
            "min_samples": t.min_samples,
            "max_excess_rate": t.max_excess_rate,
            "noise_min_samples": t.noise_min_samples,
        },
        "fields_compared": op.fields_compared,
        "fields": [_field_json(f) for f in op.fields],
    }


def _field_json(f: FieldReport) -> dict[str, object]:
    s = f.stats
    return {
        "key": str(f.key),
        "samples": s.samples,
        "differs": s.differs,
        "rate": s.rate,
        "noise_samples": s.noise_samples,
        "noise_differs": s.noise_differs,
        "noise_rate": s.noise_rate,
        "verdict": f.verdict.value,
        "examples": [
            {
                "at": dt.datetime.fromtimestamp(e.at, dt.UTC).isoformat(timespec="seconds"),
                "primary_backend": e.primary_backend,
                "primary": e.primary,
                "candidate": e.candidate,
                "readable": e.readable,
                "subject": e.subject,
            }
            for e in f.examples
        ],
    }


# -- command ------------------------------------------------------------------------------------


def main_diff(location: str | Path, as_json: bool, key_file: Path | None = None) -> int:
    """``cpr-gateway diff``: print the report of the store at ``location``, a file path or a
    ``postgresql://`` DSN (every replica's evidence), its values opened with the shadow key
    (:func:`reader_key`); 1 if there is none or it cannot be read. Messages name a DSN
    without its password."""
    if not is_dsn(location) and not Path(location).exists():
        print(f"no shadow store at {location}", file=sys.stderr)
        return 1
    try:
        key = reader_key(key_file)
        report = read_report(location, None if key is None else Sealer(key))
    except GatewayError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    sys.stdout.write(render_json(report) if as_json else render_text(report))
    return 0


def read_report(location: str | Path, sealer: Sealer | None = None) -> Report:
    """The report of the existing store at ``location``, values opened with ``sealer``
    (blocking: a thread's work in a server); a GatewayError if it cannot be read."""
    with MismatchStore.open(location, prune=False, create=False, sealer=sealer) as store:
        return build_report(store)


def reader_key(key_file: Path | None) -> bytes | None:
    """The shadow key for reading the store: ``key_file`` if it exists, else ``$KEY_ENV``;
    None when neither has one (never a new key, as :func:`load_key` would make). ConfigError
    for a key file that is unusable (readable by others, not hex, too short)."""
    if (key_file is not None and key_file.exists()) or os.environ.get(KEY_ENV):
        return load_key(key_file)
    return None
