"""A :class:`~gateway.storage.database.Database` on PostgreSQL, with psycopg 3.

The connection runs in autocommit mode, so a read never leaves a transaction
open on the server; :meth:`PostgresDatabase.transaction` opens one explicitly.
A connection that broke (the server restarted, an administrator ended the
session) is replaced at the start of the next statement or transaction outside
a transaction: the call that met the break fails, the ones after it work again,
or fail with :class:`~gateway.storage.database.ConnectionFailed` while no new
connection can be made.

The DSN may hold a password; :func:`redact` is the only form of it that goes
into a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from gateway.storage.database import (
    ConnectionFailed,
    DatabaseError,
    Dialect,
    Result,
    is_dsn,
    redact,
)

# is_dsn and redact live in gateway.storage.database (no psycopg needed to tell a DSN from a
# path); they stay importable from here for the callers that connect.
__all__ = ["CONNECT_TIMEOUT_S", "PostgresDatabase", "is_dsn", "redact"]

#: Seconds to wait for a server that does not answer before giving up on a connection;
#: without it libpq waits as long as TCP does (minutes), here and at every reconnect.
CONNECT_TIMEOUT_S = 10
#: What the server or libpq says when it turns down what the DSN asks for, rather than being
#: unable to take a connection now: the credentials (a role that does not exist is one: with
#: passwords the server reports it as a failed authentication anyway), the server's rules for
#: this client, its TLS demands, an option libpq cannot use. A connection fails without a
#: SQLSTATE, so the (English) message is all there is to go by; a translated one reads as
#: "not now", which errs on the side of trying again. A database that does not exist is "not
#: now" on purpose: it is the one thing a first start cannot create, and a fleet's database is
#: often created by a job that runs alongside the first replicas.
_REFUSED = re.compile(
    r"authentication failed|pg_hba\.conf|role \".*\" does not exist|not permitted to log in"
    r"|permission denied for database|no password supplied|server does not support SSL"
    r"|certificate|connection is bad: (invalid|could not match)"
)


class PostgresDatabase:
    """A :class:`~gateway.storage.database.Database` on one PostgreSQL connection."""

    dialect: Dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        """Connect to ``dsn``; ConnectionFailed when the server cannot be reached or refuses."""
        self._dsn = dsn
        self._in_transaction = False
        self._connection = _connect(dsn)

    def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        """Run one statement with ``?`` placeholders."""
        with _postgres_errors(), self._live().cursor() as cursor:
            cursor.execute(_placeholders(sql), params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return Result(rows, cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> int:
        """Run one statement per row of parameters; returns the rows changed in total."""
        with _postgres_errors(), self._live().cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)
            return cursor.rowcount  # psycopg sums the rowcounts of executemany

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all; not nestable."""
        with _postgres_errors(), self._live().transaction():
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    def close(self) -> None:
        """Close the connection; the database cannot be used afterwards."""
        self._connection.close()

    def _live(self) -> psycopg.Connection[TupleRow]:
        """The connection, replaced first if it broke (never inside a transaction)."""
        if self._connection.broken and not self._in_transaction:
            self._connection = _connect(self._dsn)
        return self._connection


def _connect(dsn: str) -> psycopg.Connection[TupleRow]:
    try:
        if "connect_timeout" not in conninfo_to_dict(dsn):  # the DSN's own value wins
            dsn = make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_S)
        return psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        # libpq's message names host and port, never the password; only its first line.
        message = str(exc).strip().splitlines()[0]
        refused = not isinstance(exc, psycopg.OperationalError) or _REFUSED.search(message)
        raise ConnectionFailed(message, refused=bool(refused)) from None


def _placeholders(sql: str) -> str:
    """psycopg's spelling of a statement: ``?`` is only ever a placeholder in this project's SQL."""
    return sql.replace("%", "%%").replace("?", "%s")


@contextmanager
def _postgres_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        # The primary message only: DETAIL lines can quote a row's values (a PNR).
        message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
        raise DatabaseError(message) from None
