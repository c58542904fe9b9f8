"""Where every replica reads the canary: each route's state, its history, the replicas' evidence.

A SQLite file (``var/canary.sqlite`` by default: one gateway host) or a ``postgresql://``
DSN (a fleet: every replica reads and writes the same rows, in the PostgreSQL schema
``cpr_canary``). Four tables:

* ``canary_state``: one row per canary route: step, status, reason, when the step began
  (``since``: its evidence counts from there), the shadow counters at that moment
  (``baseline``, so that a step is judged on its own comparisons), and the last
  evaluation's gates. A restart resumes from it.
* ``canary_history``: every start, promotion, rollback, pause, resume and completion,
  with who made it and the figures that drove it.
* ``canary_evidence``: rows of answers, failures and a latency histogram that each
  replica adds for (route, backend) under the step it served them in (``since``); the
  deciding replica sums every replica's rows of the current step.
* ``canary_lease``: which replica decides until when; taken or renewed by one
  conditional upsert, so one replica decides per interval.

The API is synchronous and thread-safe (one connection behind a lock): call it from a
worker thread (``asyncio.to_thread``), never on the event loop. Failures are
:class:`CanaryStoreError` (``unavailable`` when a later attempt may succeed). psycopg
is imported only for a DSN.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.canary.model import (
    CanaryState,
    Evidence,
    GateResult,
    SideFigures,
    Status,
    Transition,
    Verdict,
)
from gateway.errors import ConfigError, GatewayError
from gateway.storage.database import (
    ConnectionFailed,
    Database,
    DatabaseError,
    Dialect,
    redact,
)
from gateway.storage.stores import connect_store, create_schema

T = TypeVar("T")
#: Where the store lives unless routing.yaml's ``canary.store`` says otherwise.
DEFAULT_PATH = Path("var/canary.sqlite")
#: Where a PostgreSQL store keeps its tables (apart from the shadow store's and the services').
PG_SCHEMA = "cpr_canary"
#: Milliseconds a SQLite connection waits for another gateway of the host to release a lock.
_BUSY_TIMEOUT_MS = 5000
#: Advisory lock key for creating the tables: fixed, distinct from the shadow store's.
_CREATE_LOCK = "SELECT pg_advisory_xact_lock(7234036931)"
#: The ``replica`` of rows that sum up earlier rows of every replica.
FOLDED = "*"
#: The one lease row: one decider for every canary route of the fleet.
LEASE = "controller"

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "count": "INTEGER"},
    "postgresql": {
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "count": "BIGINT",
    },
}
_DDL = (
    """CREATE TABLE IF NOT EXISTS canary_state (
    route TEXT PRIMARY KEY, step INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    since {real} NOT NULL, updated_at {real} NOT NULL, baseline TEXT NOT NULL,
    gates TEXT NOT NULL, evaluated_at {real}
)""",
    """CREATE TABLE IF NOT EXISTS canary_history (
    id {id}, at {real} NOT NULL, route TEXT NOT NULL, kind TEXT NOT NULL,
    from_step INTEGER NOT NULL, to_step INTEGER NOT NULL, reason TEXT NOT NULL,
    who TEXT NOT NULL, figures TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS canary_history_route ON canary_history (route, id)",
    """CREATE TABLE IF NOT EXISTS canary_evidence (
    id {id}, replica TEXT NOT NULL, route TEXT NOT NULL, backend TEXT NOT NULL,
    since {real} NOT NULL, at {real} NOT NULL, requests {count} NOT NULL,
    failures {count} NOT NULL, latency TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS canary_evidence_step ON canary_evidence (route, since)",
    """CREATE TABLE IF NOT EXISTS canary_lease (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires {real} NOT NULL
)""",
)
_STATE_COLUMNS = "route, step, status, reason, since, baseline, gates, evaluated_at"
_TAKE_LEASE = (
    "INSERT INTO canary_lease VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
    " SET holder = excluded.holder, expires = excluded.expires"
    " WHERE canary_lease.holder = excluded.holder OR canary_lease.expires < ?"
)


class CanaryStoreError(GatewayError):
    """The canary store could not be read or written; never reaches a client."""

    wire = None

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        #: True when the server cannot take a connection now and a later attempt may succeed.
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True)
class StoredState:
    """A route's row: its :class:`CanaryState` and what the controller keeps beside it."""

    state: CanaryState
    #: The shadow counters when the step began (JSON of gateway.canary.evidence's baseline).
    baseline: str
    #: The last evaluation's gates, and the evidence behind them (None before the first).
    gates: tuple[GateResult, ...]
    evidence: Evidence | None
    #: When the last evaluation ran (seconds since the epoch); None before the first.
    evaluated_at: float | None


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """What one replica saw of one backend on one route within one step since its last flush."""

    route: str
    backend: str
    #: The ``since`` of the step the requests were routed in.
    since: float
    requests: int
    failures: int
    #: Latency histogram: bucket index → requests (gateway.canary.evidence.LATENCY_BOUNDS).
    latency: Mapping[int, int]


class CanaryStore:
    """Canary state, history, evidence and the decider's lease; open it with :meth:`open`."""

    def __init__(self, db: Database, name: str) -> None:
        self._db, self._name = db, name
        # One connection shared by threads; neither driver's is safe to use concurrently.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, location: str | Path = DEFAULT_PATH) -> CanaryStore:
        """Open or create the store at ``location`` (a file path or a ``postgresql://`` DSN).

        ConfigError (naming a DSN without its password) when only a change of configuration
        can mend it; CanaryStoreError ``unavailable`` when the server cannot take a
        connection now.
        """
        name = redact(str(location))
        try:
            db = connect_store(location, what="canary store", schema=PG_SCHEMA)
        except ConnectionFailed as exc:  # refused ones are ConfigErrors already
            raise CanaryStoreError(f"canary store {name}: {exc}", unavailable=True) from None
        try:
            _prepare(db)
        except ConnectionFailed as exc:
            db.close()
            raise CanaryStoreError(f"canary store {name}: {exc}", unavailable=True) from None
        except DatabaseError as exc:
            db.close()
            raise ConfigError([f"canary store {name}: not usable ({exc})"]) from None
        return cls(db, name)

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    # -- state --------------------------------------------------------------------------------

    def states(self) -> dict[str, StoredState]:
        """Every route's stored state, by route."""
        rows = self._run(lambda db: db.execute(f"SELECT {_STATE_COLUMNS} FROM canary_state").rows)
        return {row[0]: _stored(row) for row in rows}

    def start(self, state: CanaryState, baseline: str, start: Transition) -> bool:
        """Insert ``state`` for a route that has none yet, with its ``start`` history entry;
        False (and nothing written) when the route has a state already."""

        def insert(db: Database) -> bool:
            added = db.execute(
                f"INSERT INTO canary_state ({_STATE_COLUMNS}, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT (route) DO NOTHING",
                (*_state_values(state), baseline, "{}", state.since),
            )
            if added.rowcount == 1:
                _add_history(db, start)
            return added.rowcount == 1

        return self._run(insert, transaction=True)

    def change(
        self, before: CanaryState, after: CanaryState, baseline: str, transition: Transition
    ) -> bool:
        """Replace ``before`` with ``after`` and record ``transition``, only if the stored state
        is still ``before`` (another replica or an operator may have changed it meanwhile);
        True when written. Evidence of the route's other steps is deleted with it."""

        def update(db: Database) -> bool:
            changed = db.execute(
                "UPDATE canary_state SET step = ?, status = ?, reason = ?, since = ?,"
                " baseline = ?, updated_at = ? WHERE route = ? AND step = ? AND status = ?"
                " AND since = ?",
                (after.step, after.status.value, after.reason, after.since, baseline,
                 transition.at, before.route, before.step, before.status.value, before.since),
            )  # fmt: skip
            if changed.rowcount != 1:
                return False
            _add_history(db, transition)
            db.execute(
                "DELETE FROM canary_evidence WHERE route = ? AND since <> ?",
                (after.route, after.since),
            )
            return True

        return self._run(update, transaction=True)

    def set_evaluation(
        self, route: str, gates: Sequence[GateResult], evidence: Evidence, at: float
    ) -> None:
        """Keep the last evaluation of ``route`` (its gates and their evidence), for every
        replica's status."""
        text = json.dumps(
            {
                "gates": [[g.name, g.figure, g.threshold, g.passed] for g in gates],
                "evidence": _evidence_json(evidence),
            }
        )
        self._run(
            lambda db: db.execute(
                "UPDATE canary_state SET gates = ?, evaluated_at = ? WHERE route = ?",
                (text, at, route),
            )
        )

    def history(self, route: str, limit: int = 100) -> list[Transition]:
        """The newest ``limit`` entries of ``route``'s history, oldest first."""
        rows = self._run(
            lambda db: (
                db.execute(
                    "SELECT at, route, kind, from_step, to_step, reason, who, figures"
                    " FROM canary_history WHERE route = ? ORDER BY id DESC LIMIT ?",
                    (route, limit),
                ).rows
            )
        )
        return [_transition(row) for row in reversed(rows)]

    # -- evidence -----------------------------------------------------------------------------

    def add_evidence(self, replica: str, rows: Sequence[EvidenceRow], at: float) -> None:
        """Add one replica's counts since its last flush."""
        self._run(lambda db: _insert_evidence(db, replica, rows, at), transaction=True)

    def evidence(self, route: str, since: float) -> dict[str, EvidenceRow]:
        """Every replica's counts of ``route`` in the step that began at ``since``, by backend.

        The rows read are replaced by their sums (one per backend) in the same transaction,
        so that a long step costs the same to judge at every interval; rows added meanwhile
        (their ids are higher) are left for the next time.
        """

        def read_and_fold(db: Database) -> dict[str, EvidenceRow]:
            rows = db.execute(
                "SELECT id, at, backend, requests, failures, latency FROM canary_evidence"
                " WHERE route = ? AND since = ?",
                (route, since),
            ).rows
            summed = _summed(route, since, [row[2:] for row in rows])
            if len(rows) > len(summed):
                db.execute(
                    "DELETE FROM canary_evidence WHERE route = ? AND since = ? AND id <= ?",
                    (route, since, max(row[0] for row in rows)),
                )
                _insert_evidence(db, FOLDED, summed.values(), max(float(r[1]) for r in rows))
            return summed

        return self._run(read_and_fold, transaction=True)

    # -- lease --------------------------------------------------------------------------------

    def take_lease(self, holder: str, now: float, duration_s: float) -> bool:
        """Take or renew the decider's lease until ``now + duration_s``; True when ``holder``
        holds it (it held it already, or the last holder's lease had run out)."""
        taken = self._run(
            lambda db: db.execute(_TAKE_LEASE, (LEASE, holder, now + duration_s, now)).rowcount
        )
        return taken == 1

    def release_lease(self, holder: str) -> None:
        """Give the lease up (a stopping gateway), so another replica decides at once."""
        self._run(
            lambda db: db.execute(
                "DELETE FROM canary_lease WHERE name = ? AND holder = ?", (LEASE, holder)
            )
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, work: Callable[[Database], T], *, transaction: bool = False) -> T:
        """``work(db)`` under the lock (in a transaction if asked); CanaryStoreError."""
        with self._lock, self._errors():
            if not transaction:
                return work(self._db)
            with self._db.transaction():
                return work(self._db)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ConnectionFailed as exc:
            message = f"canary store {self._name}: cannot reach it ({exc})"
            raise CanaryStoreError(message, unavailable=True) from None
        except DatabaseError as exc:
            raise CanaryStoreError(f"canary store {self._name}: {exc}") from None


def _insert_evidence(db: Database, replica: str, rows: Iterable[EvidenceRow], at: float) -> None:
    db.executemany(
        "INSERT INTO canary_evidence (replica, route, backend, since, at, requests, failures,"
        " latency) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (replica, r.route, r.backend, r.since, at, r.requests, r.failures,
             json.dumps({str(i): n for i, n in sorted(r.latency.items())}))
            for r in rows
        ],
    )  # fmt: skip


def _summed(route: str, since: float, rows: Iterable[tuple[Any, ...]]) -> dict[str, EvidenceRow]:
    """(backend, requests, failures, latency JSON) rows added up per backend."""
    summed: dict[str, tuple[int, int, dict[int, int]]] = {}
    for backend, requests, failures, latency in rows:
        total, failed, buckets = summed.get(backend, (0, 0, {}))
        for index, count in json.loads(latency).items():
            buckets[int(index)] = buckets.get(int(index), 0) + int(count)
        summed[backend] = (total + int(requests), failed + int(failures), buckets)
    return {b: EvidenceRow(route, b, since, *counts) for b, counts in summed.items()}


def _state_values(state: CanaryState) -> tuple[object, ...]:
    return (state.route, state.step, state.status.value, state.reason, state.since)


def _stored(row: tuple[Any, ...]) -> StoredState:
    route, step, status, reason, since, baseline, gates, evaluated_at = row
    state = CanaryState(route, int(step), Status(status), reason, float(since))
    last = json.loads(gates) if gates else {}
    results = tuple(GateResult(*gate) for gate in last.get("gates", ()))
    evidence = _evidence_of(last["evidence"]) if last.get("evidence") else None
    evaluated = None if evaluated_at is None else float(evaluated_at)
    return StoredState(state, baseline, results, evidence, evaluated)


def _evidence_json(e: Evidence) -> dict[str, object]:
    sides = {"primary": e.primary, "candidate": e.candidate}
    return {
        "verdict": e.verdict.value,
        "comparisons": e.comparisons,
        **{name: [s.requests, s.failures, s.p99_s] for name, s in sides.items()},
    }


def _evidence_of(raw: dict[str, Any]) -> Evidence:
    return Evidence(
        Verdict(raw["verdict"]),
        int(raw["comparisons"]),
        SideFigures(*raw["primary"]),
        SideFigures(*raw["candidate"]),
    )


def _transition(row: tuple[Any, ...]) -> Transition:
    at, route, kind, from_step, to_step, reason, who, figures = row
    return Transition(
        float(at), route, kind, int(from_step), int(to_step), reason, who, json.loads(figures)
    )


def _add_history(db: Database, t: Transition) -> None:
    db.execute(
        "INSERT INTO canary_history (at, route, kind, from_step, to_step, reason, who, figures)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (t.at, t.route, t.kind, t.from_step, t.to_step, t.reason, t.who,
         json.dumps(dict(t.figures))),
    )  # fmt: skip


def _prepare(db: Database) -> None:
    """Create the tables unless there; replicas starting together take turns (a lock)."""
    if db.dialect == "sqlite":
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
    with db.transaction():
        if db.dialect == "postgresql":
            db.execute(_CREATE_LOCK)
            create_schema(db, PG_SCHEMA)
        for statement in _DDL:
            db.execute(statement.format_map(_TYPES[db.dialect]))
