"""The mismatch store's database: opened by file path or DSN, its tables on either engine.

A path is a SQLite file of its own, as it always was. A ``postgresql://`` DSN is
a store that every gateway of a fleet writes into, so that ``cpr-gateway diff``
reads all their evidence at once. Its tables live in the PostgreSQL schema
``cpr_shadow`` (the connection's ``search_path``): the database may be the one the
services' store uses, whose tables include a ``schema_version`` of their own.

The tables are one DDL written once, with each engine's spelling of the few
column types that differ. Gateways starting together create them under a
transaction-scoped advisory lock, so the first creates and the others find them.
psycopg is imported only for a DSN: a gateway on SQLite never loads it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.errors import ConfigError
from gateway.storage.database import (
    ConnectionFailed,
    Database,
    DatabaseError,
    Dialect,
    SqliteDatabase,
    is_dsn,
    redact,
)

SCHEMA_VERSION = 1
#: Where a PostgreSQL store keeps its tables.
PG_SCHEMA = "cpr_shadow"
#: Milliseconds a statement may take on PostgreSQL before it fails: a write that waits
#: longer is failing, not slow, and the writer's queue behind it must keep moving.
PG_STATEMENT_TIMEOUT_MS = 5000
#: Connection settings for a PostgreSQL store unless its DSN gives its own: a server that
#: vanishes mid-statement (no reset ever arrives) fails the statement within about 30 s
#: instead of holding the writer thread, and the gateway's shutdown, for TCP's hours.
PG_CONNECTION = {"tcp_user_timeout": "30000", "keepalives_idle": "10", "keepalives_interval": "5"}
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
    subject TEXT NOT NULL
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
    """The database at ``location``, a file path (created with its directory) or a DSN.

    ConfigError naming ``location`` (never its password) when it cannot be opened for
    a reason only a change of configuration can mend: a file or directory that cannot
    be made, a malformed DSN, psycopg not installed, a server that refuses these
    credentials. ConnectionFailed (not ``refused``) when PostgreSQL cannot take the
    connection now and a later attempt may succeed.
    """
    name = redact(str(location))
    try:
        if is_dsn(location):
            return _postgres(str(location), name)
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Used from worker threads, one at a time (the store holds a lock around it).
        return SqliteDatabase(sqlite3.connect(path, check_same_thread=False))
    except ConnectionFailed as exc:
        if not exc.refused:
            raise
        raise ConfigError([f"shadow store {name}: cannot open it ({exc})"]) from None
    except (OSError, sqlite3.Error, DatabaseError) as exc:
        raise ConfigError([f"shadow store {name}: cannot open it ({exc})"]) from None


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
        if create:
            _create(db)
        elif not db.execute(_EXISTS[db.dialect]).rows[0][0]:
            raise ConfigError([f"no shadow store at {name}"])
        _check_version(db, name, add=create)


def may_prune(db: Database) -> bool:
    """Whether this transaction should prune: on PostgreSQL one writer at a time does, and the
    others skip it rather than wait (or deadlock) on the same old rows."""
    return db.dialect == "sqlite" or bool(db.execute(_PRUNE_LOCK).rows[0][0])


def _postgres(dsn: str, name: str) -> Database:
    try:
        from gateway.storage import postgres  # noqa: PLC0415 - psycopg only for a DSN
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise ConfigError(
            [f"shadow store {name}: PostgreSQL needs psycopg: install 'cpr-gateway[postgres]'"]
        ) from None
    return postgres.PostgresDatabase(_store_dsn(dsn, name))


def _store_dsn(dsn: str, name: str) -> str:
    """``dsn`` with the store's search_path, statement timeout and TCP settings added; the
    DSN's own values win (its ``options`` come after ours, and libpq takes the last ``-c``).
    ConfigError when libpq cannot read it."""
    import psycopg  # noqa: PLC0415 - loaded with gateway.storage.postgres already
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415

    try:
        given = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        # What libpq quotes after its reason may be the password (a bad percent-encoding).
        reason = str(exc).split('"')[0].strip().rstrip(":")
        raise ConfigError([f"shadow store {name}: not a valid DSN ({reason})"]) from None
    # libpq checks the other options only once the host name resolves; a port is checked here
    # so that a typo in it is a start-up error even while the name does not resolve.
    ports = str(given.get("port") or "")
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports.split(",") if port):
        raise ConfigError([f"shadow store {name}: not a valid DSN (port {ports!r})"])
    ours = f"-c search_path={PG_SCHEMA} -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    options = f"{ours} {given['options']}" if given.get("options") else ours
    settings = {key: value for key, value in PG_CONNECTION.items() if key not in given}
    return make_conninfo(dsn, options=options, **settings)


def _create(db: Database) -> None:
    if db.dialect == "postgresql":
        db.execute(_CREATE_LOCK)  # SQLite's transaction holds the write lock already
        # Only when missing: CREATE SCHEMA needs a right on the database even with IF NOT EXISTS.
        found = db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ?", (PG_SCHEMA,))
        if not found.rows[0][0]:
            db.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    for statement in _DDL:
        db.execute(statement.format_map(_TYPES[db.dialect]))


def _check_version(db: Database, name: str, *, add: bool) -> None:
    versions = [row[0] for row in db.execute("SELECT version FROM schema_version").rows]
    if not versions and add:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif versions != [SCHEMA_VERSION]:
        raise ConfigError(
            [f"shadow store {name}: schema version {versions}, this program knows {SCHEMA_VERSION}"]
        )
