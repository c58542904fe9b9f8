"""The modern store's schema: numbered migrations, in SQLite's and PostgreSQL's spelling.

Migrations are numbered (``MIGRATIONS[0]`` is version 1) and recorded in
``schema_version``; :func:`upgrade` applies the pending ones, each in its own
transaction that only one process at a time can be in (SQLite: ``BEGIN
IMMEDIATE`` takes the write lock; PostgreSQL: a transaction-scoped advisory
lock), so two processes opening a new database at once cannot both apply one.
A database newer than this program is refused, and so is one that has tables
but no ``schema_version`` (it is something else, and is left untouched). A
migration is never edited once released: a change is a new migration, written
for both dialects.

The two dialects have the same tables, columns and column types, except BYTEA
for SQLite's BLOB and the quoted ``"user"`` (a reserved word in PostgreSQL), so
every query in the store reads the same values from either.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from gateway.errors import ConfigError
from gateway.storage.database import Database, Dialect, SqliteDatabase

Migrations = Sequence[Sequence[str]]

#: Version 5, spelled alike in both dialects: a token's SHA-256 (never the token), whom it was
#: issued to, and its last use in microseconds since the epoch (BIGINT: SQLite reads it as
#: INTEGER, and PostgreSQL's INTEGER is too short for it).
_SESSION_TOKEN = (
    "CREATE TABLE session_token ("
    " token_hash TEXT PRIMARY KEY,"
    ' customer INTEGER NOT NULL, "user" TEXT NOT NULL,'
    " last_use BIGINT NOT NULL)",
    "CREATE INDEX session_token_last_use ON session_token (last_use)",
)

#: Statements of each schema version for SQLite, in order; version N is MIGRATIONS[N - 1].
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
    # 4: each person also as the serialized cpr.v1.Person the services answer with, and the
    # fingerprint of the message's shape it was written with (cpr_services.store).
    (
        "ALTER TABLE person ADD COLUMN message BLOB",
        "ALTER TABLE person ADD COLUMN message_format TEXT",
    ),
    # 5: the services' sessions, shared by every replica (cpr_accounts.stored_tokens).
    _SESSION_TOKEN,
)

#: The same versions for PostgreSQL; 1, 2 and 5 are spelled alike in both.
PG_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    MIGRATIONS[0],
    MIGRATIONS[1],
    (
        'CREATE TABLE "user" ('
        ' customer INTEGER NOT NULL, "user" TEXT NOT NULL,'
        " salt BYTEA NOT NULL, cost INTEGER NOT NULL, digest BYTEA NOT NULL,"
        " set_at TEXT NOT NULL, changed_at TEXT,"
        " failures INTEGER NOT NULL DEFAULT 0, locked INTEGER NOT NULL DEFAULT 0,"
        ' PRIMARY KEY (customer, "user"))',
        "CREATE TABLE password_history ("
        ' customer INTEGER NOT NULL, "user" TEXT NOT NULL, digest BYTEA NOT NULL,'
        ' set_at TEXT NOT NULL, PRIMARY KEY (customer, "user", digest))',
    ),
    (
        "ALTER TABLE person ADD COLUMN message BYTEA",
        "ALTER TABLE person ADD COLUMN message_format TEXT",
    ),
    MIGRATIONS[4],
)

#: Each dialect's migrations.
MIGRATIONS_OF: dict[Dialect, tuple[tuple[str, ...], ...]] = {
    "sqlite": MIGRATIONS,
    "postgresql": PG_MIGRATIONS,
}

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)
#: The advisory lock key migrations hold on PostgreSQL: arbitrary, but fixed for this program.
_PG_LOCK = "SELECT pg_advisory_xact_lock(7234036912)"
#: The tables of the database (of the current schema, on PostgreSQL).
_TABLES: dict[Dialect, str] = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = current_schema()",
}


def upgrade(db: Database | sqlite3.Connection, migrations: Migrations | None = None) -> int:
    """Apply the pending ``migrations`` (default: the dialect's), each atomically.

    Returns the version reached; ConfigError when the database is at a version
    newer than ``migrations`` know. A bare sqlite3 connection is switched to
    autocommit and used as a :class:`SqliteDatabase`.
    """
    if isinstance(db, sqlite3.Connection):
        db = SqliteDatabase(db)
    steps = MIGRATIONS_OF[db.dialect] if migrations is None else migrations
    with _exclusive(db):
        db.execute(_VERSION_TABLE)
    _refuse_newer(db, len(steps))
    for number, statements in enumerate(steps, start=1):
        if version(db) >= number:
            continue
        with _exclusive(db):
            if version(db) < number:  # another process may have applied it while we waited
                for statement in statements:
                    db.execute(statement)
                applied = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                db.execute("INSERT INTO schema_version VALUES (?, ?)", (number, applied))
    return version(db)


def version(db: Database) -> int:
    """The schema version the database is at."""
    row = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").first()
    return int(row[0]) if row else 0


def refuse_foreign(db: Database, name: str) -> None:
    """ConfigError for a database with tables but no schema_version: not ours, so not touched."""
    tables = {str(row[0]) for row in db.execute(_TABLES[db.dialect]).rows}
    if tables and "schema_version" not in tables:
        raise ConfigError([f"store: {name} is another kind of database, not a modern store"])


@contextmanager
def _exclusive(db: Database) -> Iterator[None]:
    """A transaction only one process at a time is in."""
    with db.transaction():
        if db.dialect == "postgresql":
            db.execute(_PG_LOCK)  # SQLite's transactions hold the write lock already
        yield


def _refuse_newer(db: Database, known: int) -> None:
    found = version(db)
    if found > known:
        raise ConfigError([f"store: schema version {found} is newer than this program's {known}"])
