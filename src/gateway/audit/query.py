"""`cpr-gateway audit --pnr P | --customer C | --user U [--since T]`: the lookups that match.

"Who looked up this person": the PNR is pseudonymised with the audit key and the records
holding that pseudonym are found; the PNR itself is never printed. "Whom did this user
look up": the user's (or customer's) records, with the persons as pseudonyms. Every file of
every writer in the directory is read (a fleet's processes each write their own).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.files import writers
from gateway.audit.record import LOOKUP, parse

_AGO = re.compile(r"(\d+)(m|h|d)")
_AGO_UNITS = {"m": 60, "h": 3600, "d": 86400}
#: What a lookup record shows, in this order, in the text output.
SHOWN = ("customer", "user", "source", "pnr", "transaction", "operation", "route", "side", "fejlnr")


@dataclass(frozen=True, slots=True)
class Query:
    """What to look for; every field given must match (None: any)."""

    #: The person's pseudonym (never the PNR itself).
    pnr: str | None = None
    customer: str | None = None
    user: str | None = None
    #: Records at or after this time, as the records write it (``...Z``).
    since: str | None = None

    def needle(self) -> bytes | None:
        """Bytes every matching line holds, as the writer writes them (compact JSON, ASCII):
        lines without them are skipped before they are parsed."""
        if self.pnr is not None:
            return b'"pnr":' + json.dumps(self.pnr).encode("ascii")
        if self.user is not None:
            return b'"user":' + json.dumps(self.user).encode("ascii")
        return None

    def matches(self, record: dict[str, object]) -> bool:
        """True for a lookup record that every given field matches."""
        return (
            record.get("kind") == LOOKUP
            and (self.pnr is None or record.get("pnr") == self.pnr)
            and (self.customer is None or _same_customer(record.get("customer"), self.customer))
            and (self.user is None or record.get("user") == self.user)
            and (self.since is None or str(record.get("time", "")) >= self.since)
        )


def find(directory: Path, query: Query) -> list[dict[str, object]]:
    """Every matching lookup in ``directory``, oldest first (every writer's files merged)."""
    lines = _records(directory, query.since, query.needle())
    found = [record for record in lines if query.matches(record)]
    return sorted(found, key=lambda record: str(record.get("time", "")))


def since_time(text: str, now: dt.datetime | None = None) -> str:
    """``--since``: an ISO date or time in UTC (``2026-12-01``, ``2026-12-01T08:00``), or an
    age (``30m``, ``24h``, ``7d``), as the records' time text. ValueError for anything else."""
    now = now or dt.datetime.now(dt.UTC)
    if (ago := _AGO.fullmatch(text)) is not None:
        moment = now - dt.timedelta(seconds=int(ago[1]) * _AGO_UNITS[ago[2]])
    else:
        try:
            moment = dt.datetime.fromisoformat(text.removesuffix("Z"))
        except ValueError:
            expected = "expected e.g. 2026-12-01, 2026-12-01T08:00 or 24h"
            raise ValueError(f"--since {text!r}: {expected}") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_text(records: list[dict[str, object]]) -> str:
    """One line per lookup: its time, then ``field=value`` for each of :data:`SHOWN`."""
    return "\n".join(
        " ".join([str(record.get("time", "")), *(f"{k}={record.get(k, '')}" for k in SHOWN)])
        for record in records
    )


def render_json(records: list[dict[str, object]]) -> str:
    """The records as JSON lines, chain fields left out."""
    return "\n".join(
        json.dumps({k: v for k, v in record.items() if k != "prev"}) for record in records
    )


def _records(
    directory: Path, since: str | None, needle: bytes | None
) -> Iterator[dict[str, object]]:
    cutoff = None if since is None else dt.datetime.fromisoformat(since.removesuffix("Z"))
    for files in writers(directory).values():
        for _sequence, path in files:
            if cutoff is not None and _modified(path) < cutoff:
                continue  # its last write was before --since: none of its records can match
            with path.open("rb") as file:
                for line in file:
                    if needle is not None and needle not in line:
                        continue
                    if line.endswith(b"\n") and (record := parse(line[:-1])) is not None:
                        yield record


def _modified(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)


def _same_customer(recorded: object, wanted: str) -> bool:
    """KUNDENR compares as a number when both are digits (``12`` is ``0012``)."""
    text = str(recorded)
    if text.isdigit() and wanted.isdigit():
        return int(text) == int(wanted)
    return text == wanted
