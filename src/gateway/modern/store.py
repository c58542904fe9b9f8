"""The modern store: persons, subscriptions and users in one SQLite file, schema by migration.

Schema: pragmatic, not fully normalised. ``person`` has one row per PNR with
typed, indexed columns for what an operator or a later service selects on
(``status``, ``sex``, ``birth_date``, ``municipality``, ``post_code``,
``replaced_by``) and the whole person as JSON in ``data``
(:meth:`Person.to_json`, the register's lossless form; SQLite's ``json_extract``
reads inside it). Why not one table per part (addresses, relations,
protections …): the only read the services make is "everything about one PNR",
which would then be a dozen joins or queries per lookup, and the nested,
mostly-empty parts of a person (27 fields, 17 optional sub-records) would need
some twenty tables whose only consumer reassembles them at once. A column can
be promoted out of ``data`` by a migration when a query needs it.

``subscription``, ``user`` and ``password_history`` have the emulator's columns,
so the emulator's :class:`~gateway.emulator.state.StateStore` (scrypt digests,
history, failure counts, locks; subscriptions) works on this file unchanged and
the modern services apply exactly the emulator's rules.

Migrations are numbered (``MIGRATIONS[0]`` is version 1) and recorded in
``schema_version``; opening a store applies the pending ones, each in its own
``BEGIN IMMEDIATE`` transaction, so two processes opening a new file at once
cannot both apply one. A file newer than this program is refused. A migration
is never edited once released: a change is a new migration.

PostgreSQL is **not implemented**: a ``postgresql://`` DSN is refused with a
ConfigError saying so.

Foreign errors stop here: a file that cannot be opened or migrated is a
:class:`ConfigError`; a failed read later is :class:`BackendUnavailable`. Calls
are synchronous and short (one indexed statement); the connection belongs to
the thread that opened it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.emulator.state import StateStore
from gateway.emulator.subscriptions import Subscriptions
from gateway.errors import BackendUnavailable, ConfigError
from gateway.register.person import Person

#: Where ``cpr-gateway backend`` and ``cpr-gateway migrate`` keep the store by default.
DEFAULT_PATH = Path("var/modern.sqlite")

#: Statements of each schema version, in order; version N is MIGRATIONS[N - 1].
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: persons, and what the store was migrated from.
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE person ("
        " pnr TEXT PRIMARY KEY,"
        " status TEXT NOT NULL,"  # STATUS code, '01' … '90'
        " sex TEXT NOT NULL,"  # KOEN, 'M' / 'K'
        " birth_date TEXT NOT NULL,"  # ISO 8601
        " municipality INTEGER,"  # of the current address; NULL without one
        " post_code INTEGER,"
        " replaced_by TEXT,"  # PNRGAELD; NULL when none
        " data TEXT NOT NULL)",  # Person.to_json()
        "CREATE INDEX person_status ON person (status)",
        "CREATE INDEX person_municipality ON person (municipality) WHERE municipality IS NOT NULL",
        "CREATE INDEX person_replaced_by ON person (replaced_by) WHERE replaced_by IS NOT NULL",
    ),
    # 2: PNR subscriptions (the emulator's columns).
    (
        "CREATE TABLE subscription ("
        " customer INTEGER NOT NULL, pnr TEXT NOT NULL, created TEXT NOT NULL,"
        " PRIMARY KEY (customer, pnr))",
    ),
    # 3: users and their password history (the emulator's columns).
    (
        "CREATE TABLE user ("
        " customer INTEGER NOT NULL, user TEXT NOT NULL,"
        " salt BLOB NOT NULL, cost INTEGER NOT NULL, digest BLOB NOT NULL,"
        " set_at TEXT NOT NULL, changed_at TEXT,"
        " failures INTEGER NOT NULL DEFAULT 0, locked INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (customer, user))",
        "CREATE TABLE password_history ("
        " customer INTEGER NOT NULL, user TEXT NOT NULL, digest BLOB NOT NULL,"
        " set_at TEXT NOT NULL, PRIMARY KEY (customer, user, digest))",
    ),
)

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)
#: How long to wait for another process's write lock (a migration running alongside the
#: server) before an operation fails, in milliseconds.
_BUSY_TIMEOUT_MS = 5000
_INSERT = (
    "INSERT INTO person"
    " (pnr, status, sex, birth_date, municipality, post_code, replaced_by, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pnr) DO NOTHING"
)
_UPDATE = (
    "UPDATE person SET status = ?, sex = ?, birth_date = ?, municipality = ?, post_code = ?,"
    " replaced_by = ?, data = ? WHERE pnr = ? AND data IS NOT ?"
)
_Row = tuple[str, str, str, str, int | None, int | None, str | None, str]


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """What one :meth:`ModernStore.upsert` did."""

    inserted: int
    updated: int
    unchanged: int


class ModernStore:
    """The store of the modern services; open it with :meth:`open`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        #: Users, password history and locks, with the emulator's rules' storage.
        self.state = StateStore(db)
        #: PNR subscriptions.
        self.subscriptions: Subscriptions = self.state.subscriptions

    @classmethod
    def open(cls, location: str | Path = DEFAULT_PATH) -> ModernStore:
        """Open the SQLite file at ``location``, creating it and applying pending migrations."""
        if str(location).startswith(("postgresql:", "postgres:")):
            raise ConfigError(["store: PostgreSQL is not implemented; give a SQLite file path"])
        path = Path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError([f"store: cannot open {path}: {exc}"]) from None
        try:
            _refuse_foreign(db, path)
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # WAL: the services keep reading while a migration writes.
            db.execute("PRAGMA journal_mode = WAL")
            upgrade(db)
        except sqlite3.Error as exc:
            db.close()
            raise ConfigError([f"store: {path} is not a modern store ({exc})"]) from None
        except ConfigError:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        """Close the file; the store cannot be used afterwards."""
        self._db.close()

    def schema_version(self) -> int:
        """The schema version the file is at."""
        return _version(self._db)

    def get(self, pnr: str) -> Person | None:
        """The person with ``pnr``, or None; ValueError when the stored row does not decode."""
        row = self._read("SELECT data FROM person WHERE pnr = ?", (pnr,))
        return Person.from_json(row[0][0]) if row else None

    def contains(self, pnr: str) -> bool:
        """True when a person with ``pnr`` is stored."""
        return bool(self._read("SELECT 1 FROM person WHERE pnr = ?", (pnr,)))

    def count(self) -> int:
        """Number of persons."""
        return int(self._read("SELECT count(*) FROM person", ())[0][0])

    def meta(self) -> dict[str, str]:
        """Facts about the store's content (e.g. the register it was migrated from)."""
        return {str(k): str(v) for k, v in self._read("SELECT key, value FROM meta", ())}

    def set_meta(self, items: Iterable[tuple[str, str]]) -> None:
        """Record facts in ``meta``, replacing earlier values of the same keys."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", items)

    def upsert(self, persons: Sequence[Person]) -> UpsertCounts:
        """Store ``persons`` in one transaction: new ones inserted, changed ones replaced."""
        rows = [_row(person) for person in persons]
        with self._db:
            inserted = self._db.executemany(_INSERT, rows).rowcount
            changes = [(*row[1:], row[0], row[-1]) for row in rows]
            updated = self._db.executemany(_UPDATE, changes).rowcount
        return UpsertCounts(inserted, updated, len(rows) - inserted - updated)

    def subscribe(self, customer: int, pnr: str, now: dt.datetime) -> bool:
        """Subscribe ``customer`` to ``pnr``, committed; False when it already was."""
        try:
            return self.subscriptions.add(customer, pnr, now)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"modern store write failed: {exc}") from None

    def unsubscribe(self, customer: int, pnr: str) -> bool:
        """End the subscription, committed; False when there was none."""
        try:
            return self.subscriptions.remove(customer, pnr)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"modern store write failed: {exc}") from None

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"modern store read failed: {exc}") from None


def upgrade(db: sqlite3.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Apply the pending ``migrations`` to ``db``, each atomically; returns the version reached.

    ConfigError when the file is at a version newer than ``migrations`` know.
    """
    db.execute(_VERSION_TABLE)
    _refuse_newer(db, len(migrations))
    for version, statements in enumerate(migrations, start=1):
        if _version(db) >= version:
            continue
        # IMMEDIATE takes the write lock first: a second process waits, then sees the version.
        db.execute("BEGIN IMMEDIATE")
        try:
            if _version(db) < version:
                for statement in statements:
                    db.execute(statement)
                applied = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, applied))
            db.commit()
        except BaseException:
            db.rollback()
            raise
    return _version(db)


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def _refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    """ConfigError for a database with tables but no schema_version: not ours, so not touched."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_version" not in tables:
        raise ConfigError([f"store: {path} is another kind of database, not a modern store"])


def _refuse_newer(db: sqlite3.Connection, known: int) -> None:
    found = _version(db)
    if found > known:
        raise ConfigError([f"store: schema version {found} is newer than this program's {known}"])


def _row(person: Person) -> _Row:
    address = person.address
    return (
        person.pnr,
        person.status.value,
        person.sex.value,
        person.birth_date.isoformat(),
        address.municipality if address else None,
        address.post_code if address else None,
        person.replaced_by or None,
        person.to_json(),
    )
