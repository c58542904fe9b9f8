"""The mismatch store: differing fields with examples, and exact counters, in SQL.

Where it lives (``shadowing.store``): a SQLite file (``var/shadow.sqlite`` by
default), one per gateway host; or a PostgreSQL DSN, one store that every
gateway of a fleet writes into at once (:mod:`gateway.shadow.store_db`). What it keeps:

* ``mismatch``: one row per differing field of a comparison: when, route,
  operation, primary and shadow backend, key, both values (already redacted,
  then sealed: :mod:`gateway.shadow.sealing`) and the request's PNR *pseudonym*.
  Bounded by count and by age, oldest first (:meth:`MismatchStore.prune`, on the
  write path once a minute; the gateway's writer also calls it when idle).
* ``field_counts`` / ``request_counts``: the :class:`~gateway.shadow.noise.Tally`
  made durable (counters upserted by increments, so that writers add up, never
  pruned), so the report's rates stay exact after example rows are gone. Call
  :meth:`MismatchStore.record` for *every* comparison, matching ones too, or the rates are wrong.
* ``thresholds``: each route's thresholds as last configured, for the report.

The API is synchronous and thread-safe (one connection behind a lock): run it
in a worker thread, never on the event loop. No PNR is ever written: a sample's
subject must be a pseudonym, and every value is scrubbed of date-shaped
10-digit runs once more before it is stored. A store opened with a
:class:`~gateway.shadow.sealing.Sealer` (the gateway's always is) seals the values
it writes and opens those it reads; one opened without shows a sealed value as
``(encrypted; no key)`` and writes clear rows (tests and tools only).
"""

from __future__ import annotations

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
from gateway.shadow.sealing import CLEAR, SEALED, RowContext, Sealer, reveal
from gateway.shadow.store_db import SCHEMA_VERSION, connect, may_prune, prepare
from gateway.storage.database import ConnectionFailed, Database, DatabaseError, redact

__all__ = [
    "AGE_PRUNE_INTERVAL",
    "DEFAULT_PATH",
    "NOISE",
    "SCHEMA_VERSION",
    "SHADOW",
    "Example",
    "MismatchStore",
    "Sample",
    "StoreError",
    "StoreUnavailable",
    "Target",
]

#: Where the gateway keeps the store unless routing.yaml says otherwise.
DEFAULT_PATH = Path("var/shadow.sqlite")
#: Seconds between age prunes on the write path: a DELETE per write would cost more
#: than it saves, and rows a minute past their age harm nobody.
AGE_PRUNE_INTERVAL = 60.0
SHADOW, NOISE = "shadow", "noise"

_INSERT_ROW = (
    "INSERT INTO mismatch (at, route, kind, operation, primary_backend, shadow_backend,"
    " record, field, primary_value, candidate_value, subject, value_format)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Increments, added to what is there in one statement: writers in several processes add up.
_COUNT_FIELD = (
    "INSERT INTO field_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (route, kind, backend, operation, record, field) DO UPDATE"
    " SET samples = field_counts.samples + excluded.samples,"
    " differs = field_counts.differs + excluded.differs"
)
_COUNT_REQUEST = (
    "INSERT INTO request_counts VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (route, kind, backend, operation) DO UPDATE"
    " SET compared = request_counts.compared + excluded.compared,"
    " differing = request_counts.differing + excluded.differing"
)
_SET_THRESHOLDS = (
    "INSERT INTO thresholds VALUES (?, ?, ?, ?) ON CONFLICT (route) DO UPDATE"
    " SET min_samples = excluded.min_samples, max_excess_rate = excluded.max_excess_rate,"
    " noise_min_samples = excluded.noise_min_samples"
)


class StoreError(GatewayError):
    """The mismatch store could not be written or read; never reaches a client."""

    wire = None


class StoreUnavailable(StoreError):
    """The store's PostgreSQL server cannot take a connection now (down, unreachable, starting
    up, out of connection slots, its database not created yet): a later attempt may succeed.
    The gateway's writer tries again (gateway.shadow.writer); a report gives up."""


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
    """One stored difference of a field: both (redacted) values and whose request it was.

    ``readable`` is False when the values could not be opened: each is then
    ``(encrypted; no key)`` or ``(encrypted; another key)`` instead.
    """

    at: float
    primary_backend: str
    primary: str
    candidate: str
    subject: str
    readable: bool = True


class MismatchStore:
    """Differences and counters of shadow comparisons; open it with :meth:`open`."""

    def __init__(
        self,
        db: Database,
        max_rows: int,
        max_age_s: float,
        clock: Callable[[], float] = time.time,
        name: str = "",
        *,
        sealer: Sealer | None = None,
    ) -> None:
        self._db, self._max_rows, self._max_age_s, self._clock = db, max_rows, max_age_s, clock
        self._sealer = sealer
        #: How messages name the store (a DSN without its password).
        self._name = name
        # One connection shared by threads; neither driver's is safe to use concurrently.
        self._lock = threading.Lock()
        self._last_age_prune = clock()

    @classmethod
    def open(
        cls,
        location: str | Path = DEFAULT_PATH,
        *,
        max_rows: int = 100_000,
        max_age_s: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        prune: bool = True,
        create: bool = True,
        sealer: Sealer | None = None,
    ) -> MismatchStore:
        """Open or create the store at ``location`` (a file path or a ``postgresql://`` DSN)
        and prune rows past ``max_age_s``; values sealed and opened with ``sealer``.

        ``max_rows`` bounds the example rows (counters are tiny and kept). A reader
        that does not know the writer's retention (the report) passes ``prune=False``,
        and ``create=False`` to find a store rather than make one. ConfigError (naming a
        DSN without its password) when the store cannot be used as configured (see
        :func:`~gateway.shadow.store_db.connect`), has another schema version, or is not
        there and ``create`` is False; StoreUnavailable when its server cannot take a
        connection now.
        """
        if max_rows < 1 or max_age_s <= 0:
            raise ValueError("max_rows and max_age_s must be positive")
        name = redact(str(location))
        try:
            db = connect(location)
        except ConnectionFailed as exc:
            raise StoreUnavailable(f"shadow store {name}: cannot open it ({exc})") from None
        try:
            prepare(db, name, create=create)
        except ConnectionFailed as exc:  # the connection broke, and no new one could be made
            db.close()
            raise StoreUnavailable(f"shadow store {name}: cannot open it ({exc})") from None
        except DatabaseError as exc:
            db.close()
            raise ConfigError([f"shadow store {name}: not usable ({exc})"]) from None
        except ConfigError:
            db.close()
            raise
        store = cls(db, max_rows, max_age_s, clock, name, sealer=sealer)
        if prune:
            try:
                store.prune()
            except StoreError:
                store.close()
                raise
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
        rows, fields, requests = _rows(samples, now, self._sealer)
        with self._writing():
            self._db.executemany(_INSERT_ROW, rows)
            self._db.executemany(_COUNT_FIELD, fields)
            self._db.executemany(_COUNT_REQUEST, requests)
            if may_prune(self._db):
                self._prune_count()
                if now - self._last_age_prune >= AGE_PRUNE_INTERVAL:
                    self._prune_age(now)

    def set_thresholds(self, route: str, thresholds: Thresholds) -> None:
        """Remember a route's thresholds so the report judges it as the gateway does."""
        values = (thresholds.min_samples, thresholds.max_excess_rate, thresholds.noise_min_samples)
        with self._writing():
            self._db.execute(_SET_THRESHOLDS, (route, *values))

    def prune(self) -> None:
        """Delete rows older than ``max_age_s`` and beyond ``max_rows`` now (unless another
        gateway is pruning the same PostgreSQL store at this moment)."""
        with self._writing():
            if may_prune(self._db):
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
        # Ids only grow (AUTOINCREMENT, IDENTITY), so at most max_rows rows have an id above this.
        self._db.execute(
            "DELETE FROM mismatch WHERE id <= (SELECT max(id) FROM mismatch) - ?",
            (self._max_rows,),
        )

    def _prune_age(self, now: float) -> None:
        self._db.execute("DELETE FROM mismatch WHERE at < ?", (now - self._max_age_s,))
        self._last_age_prune = now

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A transaction; StoreUnavailable when no connection can be made for it (the old one
        broke), StoreError when a statement fails."""
        with self._lock:
            try:
                with self._db.transaction():  # committed, or rolled back on error
                    yield
            except ConnectionFailed as exc:
                message = f"shadow store {self._name}: cannot reach it ({exc})"
                raise StoreUnavailable(message) from None
            except DatabaseError as exc:
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
            # int(): PostgreSQL's sum of a BIGINT is a NUMERIC (a Decimal here).
            if kind == SHADOW:
                stats.samples, stats.differs = int(samples), int(differs)
            else:
                stats.noise_samples, stats.noise_differs = int(samples), int(differs)
        for kind, name, compared, differing in self._read(
            "SELECT kind, operation, sum(compared), sum(differing) FROM request_counts"
            " WHERE route = ? AND (kind = ? AND backend = ? OR kind = ?) GROUP BY kind, operation",
            (route, SHADOW, backend, NOISE),
        ):
            ops = tally.operations.setdefault(name, OperationStats())
            if kind == SHADOW:
                ops.compared, ops.differing = int(compared), int(differing)
            else:
                ops.noise_compared, ops.noise_differing = int(compared), int(differing)
        return tally

    def examples(self, route: str, backend: str, key: FieldKey, limit: int = 3) -> list[Example]:
        """The newest stored differences of ``key`` for ``backend`` on ``route``."""
        rows = self._read(
            "SELECT at, primary_backend, primary_value, candidate_value, subject, value_format"
            " FROM mismatch WHERE route = ? AND kind = ? AND shadow_backend = ?"
            " AND operation = ? AND record = ? AND field = ? ORDER BY id DESC LIMIT ?",
            (route, SHADOW, backend, key.operation, key.record, key.field, limit),
        )
        return [self._example(route, backend, key, row) for row in rows]

    def _example(self, route: str, backend: str, key: FieldKey, row: tuple[Any, ...]) -> Example:
        """A stored row as shown: its values opened, or said to be sealed."""
        at, primary_backend, primary, candidate, subject, value_format = row
        where = RowContext(
            route, SHADOW, key.operation, primary_backend, backend, key.record, key.field, subject
        )
        sealer = self._sealer
        shown, readable = reveal(primary, value_format, where.associated("primary"), sealer)
        other, _ = reveal(candidate, value_format, where.associated("candidate"), sealer)
        return Example(at, primary_backend, shown, other, subject, readable)

    def raw_values(self) -> list[tuple[str, str, str]]:
        """Every example row's two values as stored, with its ``value_format`` (for checks
        that nothing is kept in clear)."""
        rows = self._read("SELECT primary_value, candidate_value, value_format FROM mismatch", ())
        return [(str(p), str(c), str(f)) for p, c, f in rows]

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
                return self._db.execute(sql, args).rows
            except DatabaseError as exc:
                raise StoreError(f"shadow store: read failed ({exc})") from None


_Row = tuple[float, str, str, str, str, str, str, str, str, str, str, str]
#: A counter's key (route, kind, backend, operation[, record, field]) → [samples, hits].
_Counts = dict[tuple[str, ...], list[int]]


def _rows(
    samples: Iterable[Sample], now: float, sealer: Sealer | None
) -> tuple[list[_Row], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Mismatch rows (values sealed with ``sealer``, if any) and counter increments of
    ``samples``; ValueError on a clear PNR."""
    rows: list[_Row] = []
    fields: _Counts = {}
    requests: _Counts = {}
    for sample in samples:
        if sample.subject and not is_pseudonym(sample.subject):
            raise ValueError("a sample's subject must be a PNR pseudonym")
        c, kind = sample.comparison, NOISE if sample.noise else SHADOW
        at = now if sample.at is None else sample.at
        for diff in c.diffs:
            k = diff.key
            where = RowContext(
                sample.route, kind, k.operation, sample.primary, sample.shadow, k.record, k.field,
                sample.subject,
            )  # fmt: skip
            primary, candidate = scrub(diff.primary), scrub(diff.candidate)
            value_format = CLEAR
            if sealer is not None:
                primary = sealer.seal(primary, where.associated("primary"))
                candidate = sealer.seal(candidate, where.associated("candidate"))
                value_format = SEALED
            rows.append(
                (at, sample.route, kind, k.operation, sample.primary, sample.shadow, k.record,
                 k.field, primary, candidate, sample.subject, value_format)
            )  # fmt: skip
        for k, differs in iter_keys(c):
            _count(fields, (sample.route, kind, sample.shadow, k.operation, k.record, k.field),
                   differs)  # fmt: skip
        operation = c.operation or (c.keys[0].operation if c.keys else "")
        _count(requests, (sample.route, kind, sample.shadow, operation), not c.matches)
    return rows, _increments(fields), _increments(requests)


def _count(counts: _Counts, key: tuple[str, ...], hit: bool) -> None:
    both = counts.setdefault(key, [0, 0])
    both[0] += 1
    both[1] += hit


def _increments(counts: _Counts) -> list[tuple[object, ...]]:
    """One upsert per counter, in key order: writers on one PostgreSQL store then lock the
    counters they share in the same order, so two batches never deadlock."""
    return [(*key, samples, hits) for key, (samples, hits) in sorted(counts.items())]
