"""The register file: a read-only SQLite store of persons by PNR.

Schema (written by :mod:`cpr_mainframe.register.generate`)::

    CREATE TABLE meta   (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE person (pnr TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL);
    CREATE UNIQUE INDEX person_pnr ON person (pnr);
    CREATE INDEX person_status ON person (status, pnr);

``data`` is :meth:`Person.to_json`; ``status`` repeats the two-digit STATUS so
callers can pick persons by status without decoding. ``meta`` holds ``seed``,
``count``, ``generator_version`` and ``register_date`` (the register's "now").

Foreign errors stop here: a file that is missing or is not a register is a
:class:`ConfigError` at open; a failed read later is :class:`BackendUnavailable`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from gateway.domain.person import Person
from gateway.errors import BackendUnavailable, ConfigError

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE person (pnr TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL)",
)
# Indexes are built after the bulk insert: cheaper than maintaining them per row.
INDEXES = (
    "CREATE UNIQUE INDEX person_pnr ON person (pnr)",
    "CREATE INDEX person_status ON person (status, pnr)",
)
INSERT_PERSON = "INSERT INTO person (pnr, status, data) VALUES (?, ?, ?)"
INSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?)"


class Register:
    """Read-only access to a register file; safe to share between threads."""

    def __init__(self, connection: sqlite3.Connection, meta: dict[str, str]) -> None:
        self._db = connection
        # One connection serves every thread; sqlite3 cursors must not interleave.
        self._lock = threading.Lock()
        #: The generator's record of how this register was made.
        self.meta = meta

    @classmethod
    def open(cls, path: Path) -> Register:
        """Open ``path`` read-only; ConfigError when it is missing or not a register."""
        if not path.is_file():
            raise ConfigError([f"register: no file at {path}"])
        # as_uri() escapes characters ('?', '#', '%') that would end the path in a URI.
        uri = f"{path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            db.execute("SELECT pnr, status, data FROM person LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            db.close()
            raise ConfigError([f"register: {path} is not a register file ({exc})"]) from None
        return cls(db, meta)

    def get(self, pnr: str) -> Person | None:
        """The person with ``pnr``, or None when the register has no such PNR."""
        row = self._query("SELECT data FROM person WHERE pnr = ?", (pnr,))
        return Person.from_json(row[0][0]) if row else None

    def pnrs(self, limit: int | None = None, status: str | None = None) -> list[str]:
        """PNRs in ascending order, optionally only those with ``status``."""
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        # LIMIT -1 is SQLite for "no limit".
        sql = f"SELECT pnr FROM person {where} ORDER BY pnr LIMIT ?"
        rows = self._query(sql, (*params, -1 if limit is None else limit))
        return [row[0] for row in rows]

    def iter_persons(self, page: int = 1000) -> Iterator[Person]:
        """Every person in ascending PNR order, read ``page`` rows at a time.

        Each page is one query keyed on the last PNR seen, so the lock is held per
        page (other threads read in between) and memory stays at one page.
        """
        last = ""
        while rows := self._query(
            "SELECT pnr, data FROM person WHERE pnr > ? ORDER BY pnr LIMIT ?", (last, page)
        ):
            for _pnr, data in rows:
                yield Person.from_json(data)
            last = rows[-1][0]

    def count(self) -> int:
        """Number of persons."""
        return int(self._query("SELECT count(*) FROM person", ())[0][0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[str, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"register read failed: {exc}") from None
