"""The mismatch store's database: opened by file path or DSN, its tables on either engine.

A path is a SQLite file of its own, as it always was. A ``postgresql://`` DSN is
a store that every gateway of a fleet writes into, so that ``cpr-gateway diff``
reads all their evidence at once. Its tables live in the PostgreSQL schema
``cpr_shadow`` (the connection's ``search_path``): the database may be the one the
services' store uses, whose tables include a ``schema_version`` of their own.

The tables are one DDL written once, with each engine's spelling of the few
column types that differ. Gateways starting together create them under a
transaction-scoped advisory lock, so the first creates and the others find them.
A store of schema version 1 (before values were sealed) gets version 2's
``value_format`` column when it is opened, its rows marked ``clear``
(gateway.shadow.sealing): an additive change that a gateway of either version
can write alongside.
psycopg is imported only for a DSN: a gateway on SQLite never loads it.
"""

from __future__ import annotations

from pathlib import Path

from gateway.errors import ConfigError
from gateway.storage.database import (
    Database,
    Dialect,
)
from gateway.storage.stores import connect_store, create_schema

SCHEMA_VERSION = 2
#: Where a PostgreSQL store keeps its tables.
PG_SCHEMA = "cpr_shadow"
#: Milliseconds a SQLite connection waits for another process (the report) to release a lock.
_BUSY_TIMEOUT_MS = 5000
#: Advisory lock keys: arbitrary, fixed for this program, distinct from the services' store.
_CREATE_LOCK = "SELECT pg_advisory_xact_lock(7234036921)"
_PRUNE_LOCK = "SELECT pg_try_advisory_xact_lock(7234036922)"

#: The column types that the two engines spell differently. PostgreSQL's REAL is 4 bytes,
#: too few for seconds since the epoch; a fleet's counters can outgrow 32 bits.
_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "real": "REAL",
        "count": "INTEGER",
        "keyed": " WITHOUT ROWID",
    },
    "postgresql": {
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "count": "BIGINT",
        "keyed": "",
    },
}
_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS mismatch (
    id {id},
    at {real} NOT NULL,
    route TEXT NOT NULL,
    kind TEXT NOT NULL,
    operation TEXT NOT NULL,
    primary_backend TEXT NOT NULL,
    shadow_backend TEXT NOT NULL,
    record TEXT NOT NULL,
    field TEXT NOT NULL,
    primary_value TEXT NOT NULL,
    candidate_value TEXT NOT NULL,
    subject TEXT NOT NULL,
    value_format TEXT NOT NULL DEFAULT 'clear'
)""",
    "CREATE INDEX IF NOT EXISTS mismatch_at ON mismatch (at)",
    """CREATE INDEX IF NOT EXISTS mismatch_key
    ON mismatch (route, kind, shadow_backend, operation, record, field, id)""",
    """CREATE TABLE IF NOT EXISTS field_counts (
    route TEXT NOT NULL, kind TEXT NOT NULL, backend TEXT NOT NULL, operation TEXT NOT NULL,
    record TEXT NOT NULL, field TEXT NOT NULL,
    samples {count} NOT NULL, differs {count} NOT NULL,
    PRIMARY KEY (route, kind, backend, operation, record, field)
){keyed}""",
    """CREATE TABLE IF NOT EXISTS request_counts (
    route TEXT NOT NULL, kind TEXT NOT NULL, backend TEXT NOT NULL, operation TEXT NOT NULL,
    compared {count} NOT NULL, differing {count} NOT NULL,
    PRIMARY KEY (route, kind, backend, operation)
){keyed}""",
    """CREATE TABLE IF NOT EXISTS thresholds (
    route TEXT PRIMARY KEY,
    min_samples INTEGER NOT NULL, max_excess_rate {real} NOT NULL,
    noise_min_samples INTEGER NOT NULL
)""",
)
#: Whether the store's tables exist (PostgreSQL: in the search_path, so in PG_SCHEMA).
_EXISTS: dict[Dialect, str] = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
    "postgresql": "SELECT count(*) FROM pg_class WHERE oid = to_regclass('schema_version')",
}


def connect(location: str | Path) -> Database:
    """The database at ``location``, a file path (created with its directory) or a DSN
    (gateway.storage.stores). ConfigError naming ``location`` (never its password) for what
    only configuration can mend; ConnectionFailed (not ``refused``) when PostgreSQL cannot
    take the connection now and a later attempt may succeed."""
    return connect_store(location, what="shadow store", schema=PG_SCHEMA)


def prepare(db: Database, name: str, *, create: bool = True) -> None:
    """Create the tables (``create``) or find them, and check that they are this version's.

    ConfigError naming ``name`` when another schema version is there, or when there is
    no store and ``create`` is False; DatabaseError when the database fails.
    """
    if db.dialect == "sqlite":
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")  # so that reports read alongside the writer
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable enough for samples
    with db.transaction():
        if db.dialect == "postgresql":
            db.execute(_CREATE_LOCK)  # SQLite's transaction holds the write lock already
        if create:
            _create(db)
        elif not db.execute(_EXISTS[db.dialect]).rows[0][0]:
            raise ConfigError([f"no shadow store at {name}"])
        _check_version(db, name, add=create)


def may_prune(db: Database) -> bool:
    """Whether this transaction should prune: on PostgreSQL one writer at a time does, and the
    others skip it rather than wait (or deadlock) on the same old rows."""
    return db.dialect == "sqlite" or bool(db.execute(_PRUNE_LOCK).rows[0][0])


def _create(db: Database) -> None:
    create_schema(db, PG_SCHEMA)
    for statement in _DDL:
        db.execute(statement.format_map(_TYPES[db.dialect]))


def _check_version(db: Database, name: str, *, add: bool) -> None:
    versions = [row[0] for row in db.execute("SELECT version FROM schema_version").rows]
    if not versions and add:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif versions == [1]:
        _add_value_format(db)
    elif versions != [SCHEMA_VERSION]:
        raise ConfigError(
            [f"shadow store {name}: schema version {versions}, this program knows {SCHEMA_VERSION}"]
        )


def _add_value_format(db: Database) -> None:
    """Version 1 → 2: each row says how its values are stored; the existing rows are clear."""
    db.execute("ALTER TABLE mismatch ADD COLUMN value_format TEXT NOT NULL DEFAULT 'clear'")
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
