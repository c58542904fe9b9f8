"""PNR subscriptions (ABON_TYPE 1 create, 3 delete), kept durably in the state store.

A subscription is a (customer, PNR) pair with its creation time. Creating one that
exists, or deleting one that does not, changes nothing and is not an error
(project rule: both are idempotent and answer 00), so a client that retries after
a lost answer gets the same answer again.
"""

from __future__ import annotations

import datetime as dt

from gateway.storage.database import Database

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS subscription ("
    " customer INTEGER NOT NULL, pnr TEXT NOT NULL, created TEXT NOT NULL,"
    " PRIMARY KEY (customer, pnr))",
)


class Subscriptions:
    """Subscriptions of every customer; each change is committed before it returns."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, customer: int, pnr: str, now: dt.datetime) -> bool:
        """Subscribe ``customer`` to ``pnr``; False when it already was."""
        with self._db.transaction():
            result = self._db.execute(
                "INSERT INTO subscription (customer, pnr, created) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (customer, pnr, now.isoformat()),
            )
        return result.rowcount == 1

    def remove(self, customer: int, pnr: str) -> bool:
        """End the subscription; False when there was none."""
        with self._db.transaction():
            result = self._db.execute(
                "DELETE FROM subscription WHERE customer = ? AND pnr = ?", (customer, pnr)
            )
        return result.rowcount == 1

    def of(self, customer: int) -> list[str]:
        """The PNRs ``customer`` subscribes to, ascending."""
        rows = self._db.execute(
            "SELECT pnr FROM subscription WHERE customer = ? ORDER BY pnr", (customer,)
        ).rows
        return [str(row[0]) for row in rows]

    def created(self, customer: int, pnr: str) -> dt.datetime | None:
        """When the subscription was created, or None when there is none."""
        row = self._db.execute(
            "SELECT created FROM subscription WHERE customer = ? AND pnr = ?", (customer, pnr)
        ).first()
        return dt.datetime.fromisoformat(row[0]) if row else None
