"""Tokens kept in a shared database, so that every replica of a backend accepts them.

The rules are :class:`~cpr_accounts.tokens.Sessions`'s (8 random characters,
bound to one customer and user id, idle expiry restarted by each accepted use,
expired tokens forgotten, a bound on how many are kept); only the keeper
differs. Each issue is committed before the call returns, so a token one replica
has just answered with is valid on all the others. An accepted use refreshes the stored
last use only once it is older than a sixtieth of the idle time (30 s of the default 30
minutes): otherwise every read would be a committed write. So a token may expire up to
that long before the idle time has passed since its very last use, never later.

The token is a bearer credential, so the table holds only its SHA-256: a read
of the table gives no token to present. Nothing else about the user is kept
beyond the customer number and user id it is bound to (no PNR, no password).

The table (``session_token``) is created by the owning store's migrations
(:mod:`cpr_services.schema`, version 5)::

    token_hash  TEXT     hex SHA-256 of the token; primary key
    customer    INTEGER  the customer the token was issued to
    "user"      TEXT     the user id it was issued to
    last_use    BIGINT   microseconds since the Unix epoch (UTC) of the issue or last use;
                         indexed, for expiry and the bound

Foreign errors stop here: a failed statement is :class:`BackendUnavailable`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cpr_accounts.tokens import MAX_TOKENS, new_token
from gateway.errors import BackendUnavailable
from gateway.storage.database import Database, DatabaseError, Result

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INSERT = (
    'INSERT INTO session_token (token_hash, customer, "user", last_use) VALUES (?, ?, ?, ?)'
    " ON CONFLICT (token_hash) DO NOTHING"
)
_LAST_USE = (
    'SELECT last_use FROM session_token WHERE token_hash = ? AND customer = ? AND "user" = ?'
)
_REFRESH = "UPDATE session_token SET last_use = ? WHERE token_hash = ? AND last_use < ?"
#: An accepted use writes its time back once the stored one is this share of the idle time old.
_TOUCH_SHARE = 60
_EXPIRE_ONE = "DELETE FROM session_token WHERE token_hash = ? AND last_use <= ?"
_EXPIRE_ALL = "DELETE FROM session_token WHERE last_use <= ?"
# Everything older than the limit-th most recently used token goes. Ties at that instant
# stay, so the table may exceed the limit by the tokens used in the same microsecond.
_TRIM = (
    "DELETE FROM session_token WHERE last_use <"
    " (SELECT last_use FROM session_token ORDER BY last_use DESC LIMIT 1 OFFSET ?)"
)


class StoredSessions:
    """Tokens in the ``session_token`` table of ``db``: issued, and accepted back while fresh."""

    def __init__(self, db: Database, idle: dt.timedelta, limit: int = MAX_TOKENS) -> None:
        self._db = db
        self._idle = idle
        self._limit = limit

    def __len__(self) -> int:
        return int(self._run("SELECT count(*) FROM session_token").rows[0][0])

    def issue(self, customer: int, user: str, now: dt.datetime) -> str:
        """A new token for ``user`` of ``customer``, committed; forgets idle and surplus tokens.

        Logons are rare next to reads (a client keeps its token for many lookups), so
        tidying the table here costs little where it is done.
        """
        last_use = _microseconds(now)
        with self._transaction():
            self._db.execute(_EXPIRE_ALL, (self._cutoff(now),))
            token = new_token()
            # 62**8 tokens: a clash is rare, but must not share a session
            while self._db.execute(_INSERT, (_hash(token), customer, user, last_use)).rowcount == 0:
                token = new_token()
            self._db.execute(_TRIM, (self._limit - 1,))
        return token

    def use(self, token: str, customer: int, user: str, now: dt.datetime) -> bool:
        """True when ``token`` is live and was issued to this customer and user; refreshes it.

        Someone else's token is refused but stays valid for its owner; an idle one is removed.
        """
        cutoff, key = self._cutoff(now), _hash(token)
        row = self._run(_LAST_USE, (key, customer, user)).first()
        if row is None or int(row[0]) <= cutoff:
            self._run(_EXPIRE_ONE, (key, cutoff))
            return False
        stale = _microseconds(now - self._idle / _TOUCH_SHARE)
        if int(row[0]) < stale:  # written back only now and then: see the module docstring
            self._run(_REFRESH, (_microseconds(now), key, stale))
        return True

    def _cutoff(self, now: dt.datetime) -> int:
        """Tokens last used at or before this instant are expired."""
        return _microseconds(now - self._idle)

    def _run(self, sql: str, params: Sequence[object] = ()) -> Result:
        with _unavailable_on_error():
            return self._db.execute(sql, params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with _unavailable_on_error(), self._db.transaction():
            yield


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    try:
        yield
    except DatabaseError as exc:
        raise BackendUnavailable(f"session store failed: {exc}") from None


def _hash(token: str) -> str:
    """What the table keeps of a token: enough to recognise it, useless to present."""
    return hashlib.sha256(token.encode()).hexdigest()


def _microseconds(moment: dt.datetime) -> int:
    """``moment`` (aware) as whole microseconds since the epoch: exact, and ordered in SQL."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)
