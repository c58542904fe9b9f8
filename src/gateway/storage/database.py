"""One small interface to a SQL database, so that the state code runs on SQLite and PostgreSQL.

The emulator keeps its state in SQLite (:class:`SqliteDatabase`); the modern
store can also use PostgreSQL (``gateway.storage.postgres``), with the same
:class:`~cpr_accounts.state.StateStore` code on the same tables. SQL is
written once, in the spelling both accept: ``?`` placeholders (the PostgreSQL
adapter turns them into ``%s``), ``INSERT … ON CONFLICT``, and the reserved
word ``"user"`` always quoted. What the two cannot share (column types in
DDL, catalog queries, locking) is chosen by :attr:`Database.dialect`. A
location is a file path or a ``postgresql://`` DSN: :func:`is_dsn` tells them
apart without loading the PostgreSQL driver, and :func:`redact` names either in
a message without its password.

Foreign errors stop here: every driver error becomes :class:`DatabaseError`
carrying the driver's primary message only, never the statement's values; a
connection that cannot be made is a :class:`ConnectionFailed`, which says whether
trying again later may help.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from gateway.storage.files import private_file

Dialect = Literal["sqlite", "postgresql"]
_QUERY_PASSWORD = re.compile(r"(^|&)password=[^&]*")


def is_dsn(location: object) -> bool:
    """True when ``location`` is a PostgreSQL URL rather than a SQLite file path."""
    return str(location).startswith(("postgresql://", "postgres://"))


def redact(location: str) -> str:
    """A DSN with any password replaced by ``***``, for messages; a file path as it is."""
    if not is_dsn(location):
        return location
    try:
        parts = urllib.parse.urlsplit(location)
    except ValueError:  # unreadable (an unclosed IPv6 bracket): no part of it is safe to show
        return location.partition("://")[0] + "://***"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    query = _QUERY_PASSWORD.sub(r"\1password=***", parts.query)
    # Put together by hand: urlunsplit would drop the empty host of "postgresql:///db".
    return f"{parts.scheme}://{userinfo}{at}{hostport}{parts.path}{'?' if query else ''}{query}"


class DatabaseError(Exception):
    """A statement failed or the database cannot be reached (the driver's message, no values)."""


class ConnectionFailed(DatabaseError):
    """No connection to the server could be made.

    ``refused`` when what the location asks for was turned down: the credentials,
    the server's rules for this client, or an option the driver cannot use. Trying
    again cannot help until someone changes the configuration. Otherwise the server
    could not take the connection now (unreachable, timed out, unknown host,
    starting up or shutting down, out of connection slots, the database not created
    yet), and a later attempt may succeed.
    """

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True, slots=True)
class Result:
    """What one statement gave back: all its rows (every query here is small) and its rowcount."""

    rows: list[tuple[Any, ...]]
    #: Rows the statement changed; -1 for a query.
    rowcount: int

    def first(self) -> tuple[Any, ...] | None:
        """The first row, or None when there is none."""
        return self.rows[0] if self.rows else None


class Database(Protocol):
    """A connection that commits each statement unless it runs inside :meth:`transaction`."""

    @property
    def dialect(self) -> Dialect:
        """Which SQL the database speaks, for the few statements that differ."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        """Run one statement with ``?`` placeholders."""

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> int:
        """Run one statement per row of parameters; returns the rows changed in total."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together or not at all; not nestable."""

    def close(self) -> None:
        """Close the connection; the database cannot be used afterwards."""


class SqliteDatabase:
    """A :class:`Database` on one SQLite file."""

    dialect: Dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        # Autocommit, so that only transaction() opens a transaction and never implicitly.
        connection.isolation_level = None
        self._db = connection

    @classmethod
    def open(cls, path: Path) -> SqliteDatabase:
        """Open (or create, 0600) the file at ``path``, creating its directory too (0700)."""
        try:
            return cls(sqlite3.connect(private_file(path)))
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(str(exc)) from None

    def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        """Run one statement with ``?`` placeholders."""
        with _sqlite_errors():
            cursor = self._db.execute(sql, params)
            return Result(cursor.fetchall(), cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> int:
        """Run one statement per row of parameters; returns the rows changed in total."""
        with _sqlite_errors():
            return self._db.executemany(sql, rows).rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction that holds the write lock from its start, so it never fails to upgrade."""
        with _sqlite_errors():
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            with _sqlite_errors():
                self._db.execute("COMMIT")
        except BaseException:
            self._db.rollback()  # a no-op when SQLite already rolled back itself
            raise

    def close(self) -> None:
        """Close the file; the database cannot be used afterwards."""
        self._db.close()


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise DatabaseError(str(exc)) from None
