"""The mismatch store: differing fields with examples, and exact counters, in SQLite.

What it keeps (``var/shadow.sqlite`` by default):

* ``mismatch``: one row per differing field of a comparison: when, route,
  operation, primary and shadow backend, key, both values (already redacted)
  and the request's PNR *pseudonym*. Bounded by count and by age, oldest first.
* ``field_counts`` / ``request_counts``: the :class:`~gateway.shadow.noise.Tally`
  made durable (upserted counters, never pruned), so the report's rates stay
  exact after example rows are gone. Call :meth:`MismatchStore.record` for
  *every* comparison, matching ones too, or the rates are wrong.
* ``thresholds``: each route's thresholds as last configured, for the report.

The API is synchronous and thread-safe (one connection behind a lock): run it
in a worker thread, never on the event loop. No PNR is ever written: a sample's
subject must be a pseudonym, and every value is scrubbed of date-shaped
10-digit runs once more before it is stored.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.comparison import FieldKey, Thresholds
from gateway.errors import ConfigError, GatewayError
from gateway.shadow.compare import Comparison, iter_keys, scrub
from gateway.shadow.noise import FieldStats, OperationStats, Tally
from gateway.shadow.pseudonym import is_pseudonym

#: Where the gateway keeps the store unless routing.yaml says otherwise.
DEFAULT_PATH = Path("var/shadow.sqlite")
SCHEMA_VERSION = 1
#: Seconds between age prunes on the write path: a DELETE per write would cost more
#: than it saves, and rows a minute past their age harm nobody.
AGE_PRUNE_INTERVAL = 60.0
#: Milliseconds to wait for the report (another process) to release a lock.
_BUSY_TIMEOUT_MS = 5000
SHADOW, NOISE = "shadow", "noise"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mismatch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    route TEXT NOT NULL,
    kind TEXT NOT NULL,
    operation TEXT NOT NULL,
    primary_backend TEXT NOT NULL,
    shadow_backend TEXT NOT NULL,
    record TEXT NOT NULL,
    field TEXT NOT NULL,
    primary_value TEXT NOT NULL,
    candidate_value TEXT NOT NULL,
    subject TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mismatch_at ON mismatch (at);
CREATE INDEX IF NOT EXISTS mismatch_key
    ON mismatch (route, kind, shadow_backend, operation, record, field, id);
CREATE TABLE IF NOT EXISTS field_counts (
    route TEXT NOT NULL, kind TEXT NOT NULL, backend TEXT NOT NULL, operation TEXT NOT NULL,
    record TEXT NOT NULL, field TEXT NOT NULL,
    samples INTEGER NOT NULL, differs INTEGER NOT NULL,
    PRIMARY KEY (route, kind, backend, operation, record, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS request_counts (
    route TEXT NOT NULL, kind TEXT NOT NULL, backend TEXT NOT NULL, operation TEXT NOT NULL,
    compared INTEGER NOT NULL, differing INTEGER NOT NULL,
    PRIMARY KEY (route, kind, backend, operation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thresholds (
    route TEXT PRIMARY KEY,
    min_samples INTEGER NOT NULL, max_excess_rate REAL NOT NULL, noise_min_samples INTEGER NOT NULL
);
"""
_INSERT_ROW = (
    "INSERT INTO mismatch (at, route, kind, operation, primary_backend, shadow_backend,"
    " record, field, primary_value, candidate_value, subject)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT_FIELD = (
    "INSERT INTO field_counts VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
    " ON CONFLICT DO UPDATE SET samples = samples + 1, differs = differs + excluded.differs"
)
_COUNT_REQUEST = (
    "INSERT INTO request_counts VALUES (?, ?, ?, ?, 1, ?)"
    " ON CONFLICT DO UPDATE SET compared = compared + 1, differing = differing + excluded.differing"
)
_SET_THRESHOLDS = "INSERT OR REPLACE INTO thresholds VALUES (?, ?, ?, ?)"


class StoreError(GatewayError):
    """The mismatch store could not be written or read; never reaches a client."""

    wire = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished comparison and where it came from.

    ``shadow`` names the compared backend: the shadow (``noise`` False) or the
    second primary instance (``noise`` True). ``subject`` is the request's PNR
    pseudonym (:meth:`Pseudonymiser.pnr`), ``""`` when the request has no PNR.
    ``at`` is seconds since the epoch; None means now.
    """

    route: str
    primary: str
    shadow: str
    comparison: Comparison
    subject: str = ""
    noise: bool = False
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A candidate compared on a route for an operation, with its request counts."""

    route: str
    backend: str
    operation: str
    compared: int
    differing: int


@dataclass(frozen=True, slots=True)
class Example:
    """One stored difference of a field: both (redacted) values and whose request it was."""

    at: float
    primary_backend: str
    primary: str
    candidate: str
    subject: str


class MismatchStore:
    """Differences and counters of shadow comparisons; open it with :meth:`open`."""

    def __init__(
        self,
        db: sqlite3.Connection,
        max_rows: int,
        max_age_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db, self._max_rows, self._max_age_s, self._clock = db, max_rows, max_age_s, clock
        # One connection shared by threads; sqlite3 objects are not safe to use concurrently.
        self._lock = threading.Lock()
        self._last_age_prune = clock()

    @classmethod
    def open(
        cls,
        path: str | Path = DEFAULT_PATH,
        *,
        max_rows: int = 100_000,
        max_age_s: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        prune: bool = True,
    ) -> MismatchStore:
        """Open or create the store at ``path`` and prune rows past ``max_age_s``.

        ``max_rows`` bounds the example rows (counters are tiny and kept). A reader
        that does not know the writer's retention (the report) passes ``prune=False``.
        ConfigError when the file cannot be used or has another schema version.
        """
        if max_rows < 1 or max_age_s <= 0:
            raise ValueError("max_rows and max_age_s must be positive")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError([f"shadow store {path}: cannot open it ({exc})"]) from None
        try:
            _prepare(db, path)
        except sqlite3.Error as exc:
            db.close()
            raise ConfigError([f"shadow store {path}: not usable ({exc})"]) from None
        except ConfigError:
            db.close()
            raise
        store = cls(db, max_rows, max_age_s, clock)
        if prune:
            store.prune()
        return store

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> MismatchStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def record(self, sample: Sample) -> None:
        """Store one comparison's differences and count it; ValueError if it carries a PNR."""
        self.record_many((sample,))

    def record_many(self, samples: Iterable[Sample]) -> None:
        """Store several comparisons in one transaction (what a batching writer wants)."""
        now = self._clock()
        rows, fields, requests = _rows(samples, now)
        with self._writing():
            self._db.executemany(_INSERT_ROW, rows)
            self._db.executemany(_COUNT_FIELD, fields)
            self._db.executemany(_COUNT_REQUEST, requests)
            self._prune_count()
            if now - self._last_age_prune >= AGE_PRUNE_INTERVAL:
                self._prune_age(now)

    def set_thresholds(self, route: str, thresholds: Thresholds) -> None:
        """Remember a route's thresholds so the report judges it as the gateway does."""
        values = (thresholds.min_samples, thresholds.max_excess_rate, thresholds.noise_min_samples)
        with self._writing():
            self._db.execute(_SET_THRESHOLDS, (route, *values))

    def prune(self) -> None:
        """Delete rows older than ``max_age_s`` and beyond ``max_rows`` now."""
        with self._writing():
            self._prune_count()
            self._prune_age(self._clock())

    def reset(self, route: str | None = None) -> None:
        """Forget everything about ``route`` (or every route), e.g. after a fix on the new side."""
        tables = ("mismatch", "field_counts", "request_counts", "thresholds")
        with self._writing():
            for table in tables:
                if route is None:
                    self._db.execute(f"DELETE FROM {table}")  # table names are constants
                else:
                    self._db.execute(f"DELETE FROM {table} WHERE route = ?", (route,))

    def _prune_count(self) -> None:
        # Ids only grow (AUTOINCREMENT), so at most max_rows rows have an id above this.
        self._db.execute(
            "DELETE FROM mismatch WHERE id <= (SELECT max(id) FROM mismatch) - ?",
            (self._max_rows,),
        )

    def _prune_age(self, now: float) -> None:
        self._db.execute("DELETE FROM mismatch WHERE at < ?", (now - self._max_age_s,))
        self._last_age_prune = now

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock:
            try:
                with self._db:  # one transaction: committed, or rolled back on error
                    yield
            except sqlite3.Error as exc:
                raise StoreError(f"shadow store: write failed ({exc})") from None

    # -- reading ------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """Every (route, shadow backend, operation) compared so far, sorted."""
        rows = self._read(
            "SELECT route, backend, operation, compared, differing FROM request_counts"
            " WHERE kind = ? ORDER BY route, backend, operation",
            (SHADOW,),
        )
        return [Target(*row) for row in rows]

    def tally(self, route: str, backend: str) -> Tally:
        """The counters of ``backend`` shadowing ``route``, with the route's noise counters."""
        tally = Tally()
        for kind, name, record, field, samples, differs in self._read(
            "SELECT kind, operation, record, field, sum(samples), sum(differs) FROM field_counts"
            " WHERE route = ? AND (kind = ? AND backend = ? OR kind = ?)"
            " GROUP BY kind, operation, record, field",
            (route, SHADOW, backend, NOISE),
        ):
            stats = tally.fields.setdefault(FieldKey(name, record, field), FieldStats())
            if kind == SHADOW:
                stats.samples, stats.differs = samples, differs
            else:
                stats.noise_samples, stats.noise_differs = samples, differs
        for kind, name, compared, differing in self._read(
            "SELECT kind, operation, sum(compared), sum(differing) FROM request_counts"
            " WHERE route = ? AND (kind = ? AND backend = ? OR kind = ?) GROUP BY kind, operation",
            (route, SHADOW, backend, NOISE),
        ):
            ops = tally.operations.setdefault(name, OperationStats())
            if kind == SHADOW:
                ops.compared, ops.differing = compared, differing
            else:
                ops.noise_compared, ops.noise_differing = compared, differing
        return tally

    def examples(self, route: str, backend: str, key: FieldKey, limit: int = 3) -> list[Example]:
        """The newest stored differences of ``key`` for ``backend`` on ``route``."""
        rows = self._read(
            "SELECT at, primary_backend, primary_value, candidate_value, subject FROM mismatch"
            " WHERE route = ? AND kind = ? AND shadow_backend = ? AND operation = ?"
            " AND record = ? AND field = ? ORDER BY id DESC LIMIT ?",
            (route, SHADOW, backend, key.operation, key.record, key.field, limit),
        )
        return [Example(*row) for row in rows]

    def thresholds(self, route: str) -> Thresholds:
        """The route's thresholds as last set, else the defaults."""
        rows = self._read(
            "SELECT min_samples, max_excess_rate, noise_min_samples FROM thresholds"
            " WHERE route = ?",
            (route,),
        )
        return Thresholds(*rows[0]) if rows else Thresholds()

    def row_count(self) -> int:
        """Example rows currently kept."""
        return int(self._read("SELECT count(*) FROM mismatch", ())[0][0])

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args))
            except sqlite3.Error as exc:
                raise StoreError(f"shadow store: read failed ({exc})") from None


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema, or check that an existing one is ours; WAL so reports read alongside."""
    db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable enough for samples
    db.executescript(_SCHEMA)
    with db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
        if not versions:
            db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif versions != [SCHEMA_VERSION]:
            raise ConfigError(
                [
                    f"shadow store {path}: schema version {versions}, "
                    f"this program knows {SCHEMA_VERSION}"
                ]
            )


_Row = tuple[float, str, str, str, str, str, str, str, str, str, str]
_FieldCount = tuple[str, str, str, str, str, str, int]
_RequestCount = tuple[str, str, str, str, int]


def _rows(
    samples: Iterable[Sample], now: float
) -> tuple[list[_Row], list[_FieldCount], list[_RequestCount]]:
    """Mismatch rows and counter increments of ``samples``; ValueError on a clear PNR."""
    rows: list[_Row] = []
    fields: list[_FieldCount] = []
    requests: list[_RequestCount] = []
    for sample in samples:
        if sample.subject and not is_pseudonym(sample.subject):
            raise ValueError("a sample's subject must be a PNR pseudonym")
        c, kind = sample.comparison, NOISE if sample.noise else SHADOW
        at = now if sample.at is None else sample.at
        for diff in c.diffs:
            k = diff.key
            rows.append(
                (at, sample.route, kind, k.operation, sample.primary, sample.shadow, k.record,
                 k.field, scrub(diff.primary), scrub(diff.candidate), sample.subject)
            )  # fmt: skip
        for k, differs in iter_keys(c):
            fields.append((sample.route, kind, sample.shadow, k.operation, k.record, k.field,
                           int(differs)))  # fmt: skip
        operation = c.operation or (c.keys[0].operation if c.keys else "")
        requests.append((sample.route, kind, sample.shadow, operation, int(not c.matches)))
    return rows, fields, requests
