"""The emulator's durable state: users' credentials and lock flags, and subscriptions.

One SQLite file (path from config), created on first start; the modern store
runs the same code on its own database (SQLite or PostgreSQL) through the
:class:`~gateway.storage.database.Database` interface. Passwords exist here
only as digests (:mod:`cpr_accounts.digests`): each user has one random salt, and
every password it ever had is kept as a digest under that salt, so "not used
before" (spec §7) costs one hash per cost in the history, not one per old password.
Every change is committed before the call returns, so an answer is only sent for a
change that survives a crash.

All calls run on the event loop's thread: each is one small indexed statement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cpr_accounts import subscriptions
from cpr_accounts.subscriptions import Subscriptions
from gateway.errors import ConfigError
from gateway.storage.database import Database, DatabaseError, SqliteDatabase

#: The ``cost`` of a user whose digests all carry their parameters (Argon2id).
NO_SCRYPT = 0

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS user ("
    " customer INTEGER NOT NULL, user TEXT NOT NULL,"
    " salt BLOB NOT NULL, cost INTEGER NOT NULL, digest BLOB NOT NULL,"
    " set_at TEXT NOT NULL, changed_at TEXT,"
    " failures INTEGER NOT NULL DEFAULT 0, locked INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (customer, user))",
    "CREATE TABLE IF NOT EXISTS password_history ("
    " customer INTEGER NOT NULL, user TEXT NOT NULL, digest BLOB NOT NULL, set_at TEXT NOT NULL,"
    " PRIMARY KEY (customer, user, digest))",
    *subscriptions.SCHEMA,
)


@dataclass(frozen=True, slots=True, repr=False)
class UserState:
    """What the store knows about one user id of one customer."""

    customer: int
    user: str
    salt: bytes
    #: scrypt's N for this user's digests without a header (written before Argon2id), fixed
    #: when the user was seeded; NO_SCRYPT for a user seeded since.
    cost: int
    digest: bytes
    #: When the current password was set: the start of its 90 days.
    set_at: dt.datetime
    #: When the user last changed the password itself; None for the seeded one.
    changed_at: dt.datetime | None
    failures: int
    locked: bool

    def __repr__(self) -> str:  # digests and salts stay out of logs
        return f"UserState(customer={self.customer}, user={self.user!r}, locked={self.locked})"


class StateStore:
    """Users and subscriptions in one database (the emulator's: one SQLite file)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: Subscriptions, sharing this store's connection.
        self.subscriptions = Subscriptions(db)

    @classmethod
    def open(cls, path: Path) -> StateStore:
        """Open ``path``, creating the file and its tables on first start."""
        try:
            db = SqliteDatabase.open(path)
        except DatabaseError as exc:
            raise ConfigError([f"state: cannot open {path}: {exc}"]) from None
        try:
            with db.transaction():
                for statement in SCHEMA:
                    db.execute(statement)
        except DatabaseError as exc:
            db.close()
            raise ConfigError([f"state: {path} is not an emulator state file ({exc})"]) from None
        return cls(db)

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        self._db.close()

    def user(self, customer: int, user: str) -> UserState | None:
        """The stored state of ``user``, or None when it was never seeded."""
        row = self._db.execute(
            'SELECT salt, cost, digest, set_at, changed_at, failures, locked FROM "user"'
            ' WHERE customer = ? AND "user" = ?',
            (customer, user),
        ).first()
        if row is None:
            return None
        salt, cost, digest, set_at, changed_at, failures, locked = row
        return UserState(
            customer,
            user,
            bytes(salt),
            int(cost),
            bytes(digest),
            dt.datetime.fromisoformat(set_at),
            dt.datetime.fromisoformat(changed_at) if changed_at else None,
            int(failures),
            bool(locked),
        )

    def add_user(
        self,
        customer: int,
        user: str,
        *,
        salt: bytes,
        cost: int,
        digest: bytes,
        now: dt.datetime,
    ) -> None:
        """Seed a user with its first password; its 90 days start ``now``."""
        with self._db.transaction():
            self._db.execute(
                'INSERT INTO "user" (customer, "user", salt, cost, digest, set_at)'
                " VALUES (?, ?, ?, ?, ?, ?)",
                (customer, user, salt, cost, digest, now.isoformat()),
            )
            self._remember(customer, user, digest, now)

    def set_password(self, customer: int, user: str, digest: bytes, now: dt.datetime) -> None:
        """Store a password the user chose; it becomes history at once."""
        with self._db.transaction():
            self._db.execute(
                'UPDATE "user" SET digest = ?, set_at = ?, changed_at = ?'
                ' WHERE customer = ? AND "user" = ?',
                (digest, now.isoformat(), now.isoformat(), customer, user),
            )
            self._remember(customer, user, digest, now)

    def rehash(self, customer: int, user: str, *, old: bytes, new: bytes) -> bool:
        """Replace the current digest ``old`` by ``new`` (the same password at another cost),
        keeping when it was set; False when the password changed meanwhile (left as it is)."""
        with self._db.transaction():
            changed = self._db.execute(
                'UPDATE "user" SET digest = ? WHERE customer = ? AND "user" = ? AND digest = ?',
                (new, customer, user, old),
            ).rowcount
            if changed:
                self._db.execute(
                    'INSERT INTO password_history (customer, "user", digest, set_at)'
                    ' SELECT customer, "user", digest, set_at FROM "user"'
                    ' WHERE customer = ? AND "user" = ? ON CONFLICT DO NOTHING',
                    (customer, user),
                )
        return bool(changed)

    def history(self, customer: int, user: str) -> frozenset[bytes]:
        """The digests of every password the user has had (the current one included)."""
        rows = self._db.execute(
            'SELECT digest FROM password_history WHERE customer = ? AND "user" = ?',
            (customer, user),
        ).rows
        return frozenset(bytes(row[0]) for row in rows)

    def record_failure(self, customer: int, user: str, lock_after: int) -> int:
        """Count a failed logon; the user is locked once ``lock_after`` fail in a row."""
        with self._db.transaction():
            self._db.execute(
                'UPDATE "user" SET failures = failures + 1,'
                " locked = CASE WHEN failures + 1 >= ? THEN 1 ELSE locked END"
                ' WHERE customer = ? AND "user" = ?',
                (lock_after, customer, user),
            )
        state = self.user(customer, user)
        return state.failures if state else 0

    def clear_failures(self, customer: int, user: str) -> None:
        """A successful logon ends a run of failures."""
        with self._db.transaction():
            self._db.execute(
                'UPDATE "user" SET failures = 0 WHERE customer = ? AND "user" = ? AND failures > 0',
                (customer, user),
            )

    def unlock(self, customer: int, user: str) -> None:
        """Lift a lock (what CPR's support desk does on request); failures start from 0."""
        with self._db.transaction():
            self._db.execute(
                'UPDATE "user" SET locked = 0, failures = 0 WHERE customer = ? AND "user" = ?',
                (customer, user),
            )

    def _remember(self, customer: int, user: str, digest: bytes, now: dt.datetime) -> None:
        self._db.execute(
            'INSERT INTO password_history (customer, "user", digest, set_at)'
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (customer, user, digest, now.isoformat()),
        )
