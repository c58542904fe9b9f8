"""Opening one of the gateway's own stores: a SQLite file, or a schema of its own in PostgreSQL.

The shadow evidence (:mod:`gateway.shadow.store`) and the canary state
(:mod:`gateway.canary.store`) each live in a database that routing.yaml names by a
path or a ``postgresql://`` DSN, several gateways writing into one. Both open it the
same way, here:

- a **path** is a SQLite file, created 0600 with its directory 0700
  (:mod:`gateway.storage.files`), used from worker threads one at a time (each store
  holds a lock around its connection);
- a **DSN** is PostgreSQL, with the store's ``search_path`` and a statement timeout set
  (a statement that waits longer is failing, and a store's worker thread must keep
  moving), and TCP settings that fail a statement within about 30 s when the server
  vanishes mid-statement instead of holding the thread, and the gateway's shutdown, for
  TCP's hours. The DSN's own values win. psycopg is imported only for a DSN.

What only a change of configuration can mend (a file that cannot be made, a malformed
DSN, psycopg missing, credentials the server refuses) is a ConfigError naming the store
without its password; a server that cannot take the connection now raises
:class:`~gateway.storage.database.ConnectionFailed` for the caller to retry.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.errors import ConfigError
from gateway.storage.database import (
    ConnectionFailed,
    Database,
    DatabaseError,
    SqliteDatabase,
    is_dsn,
    redact,
)
from gateway.storage.files import private_file

#: Milliseconds a statement may take on PostgreSQL before it fails.
STATEMENT_TIMEOUT_MS = 5000
#: libpq settings unless the DSN gives its own (see the module's docstring).
CONNECTION = {"tcp_user_timeout": "30000", "keepalives_idle": "10", "keepalives_interval": "5"}


def connect_store(location: str | Path, *, what: str, schema: str) -> Database:
    """The database of the store ``what`` (``"shadow store"``) at ``location``; its tables,
    on PostgreSQL, in ``schema``. ConfigError or ConnectionFailed as the module says."""
    name = redact(str(location))
    try:
        if is_dsn(location):
            return _postgres(str(location), what, name, schema)
        path = private_file(Path(location))
        return SqliteDatabase(sqlite3.connect(path, check_same_thread=False))
    except ConnectionFailed as exc:
        if not exc.refused:
            raise
        raise ConfigError([f"{what} {name}: cannot open it ({exc})"]) from None
    except (OSError, sqlite3.Error, DatabaseError) as exc:
        raise ConfigError([f"{what} {name}: cannot open it ({exc})"]) from None


def create_schema(db: Database, schema: str) -> None:
    """Make ``schema`` on PostgreSQL unless it is there (inside the caller's transaction and
    lock). Only when missing: CREATE SCHEMA needs a right on the database even with IF NOT
    EXISTS, which a role that only uses an existing store need not have."""
    if db.dialect != "postgresql":
        return
    found = db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ?", (schema,))
    if not found.rows[0][0]:
        db.execute(f"CREATE SCHEMA {schema}")


def _postgres(dsn: str, what: str, name: str, schema: str) -> Database:
    try:
        from gateway.storage import postgres  # noqa: PLC0415 - psycopg only for a DSN
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise ConfigError(
            [f"{what} {name}: PostgreSQL needs psycopg: install 'cpr-gateway[postgres]'"]
        ) from None
    return postgres.PostgresDatabase(_conninfo(dsn, what, name, schema))


def _conninfo(dsn: str, what: str, name: str, schema: str) -> str:
    """``dsn`` with the store's search_path, statement timeout and TCP settings added (its
    ``options`` come after ours, and libpq takes the last ``-c``). ConfigError when libpq
    cannot read it."""
    import psycopg  # noqa: PLC0415 - loaded with gateway.storage.postgres already
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415

    try:
        given = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        # What libpq quotes after its reason may be the password (a bad percent-encoding).
        reason = str(exc).split('"')[0].strip().rstrip(":")
        raise ConfigError([f"{what} {name}: not a valid DSN ({reason})"]) from None
    # libpq checks the other options only once the host name resolves; a port is checked here
    # so that a typo in it is a start-up error even while the name does not resolve.
    ports = str(given.get("port") or "")
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports.split(",") if port):
        raise ConfigError([f"{what} {name}: not a valid DSN (port {ports!r})"])
    ours = f"-c search_path={schema} -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    options = f"{ours} {given['options']}" if given.get("options") else ours
    settings = {key: value for key, value in CONNECTION.items() if key not in given}
    return make_conninfo(dsn, options=options, **settings)
