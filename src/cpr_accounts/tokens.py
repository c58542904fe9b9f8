"""Tokens (spec §4.4): 8 characters from ``[A-Za-z0-9]``, bound to one customer and user id.

A token expires after a configurable time without use (project rule, 30 minutes
by default); each accepted use restarts that time. Two kinds keep them, behind
one interface (:class:`SessionTokens`):

- :class:`Sessions` keeps them in memory, as the mainframe does: a restart logs
  every client out, and clients answer 07 by logging on again. The emulator uses it.
- :class:`~cpr_accounts.stored_tokens.StoredSessions` keeps them in a database
  that several processes share, so that any replica of the modern services
  accepts a token another issued, and a restart logs nobody out.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

TOKEN_LENGTH = 8
_ALPHABET = string.ascii_letters + string.digits
#: Live tokens kept at most. Clients reuse one token for many lookups, so even a busy
#: day stays far below this; beyond it the least recently used token is forgotten
#: (its client gets 07 and logs on again) instead of memory growing without end.
MAX_TOKENS = 100_000


class SessionTokens(Protocol):
    """Issues tokens and accepts them back while they are fresh: what a backend's logon and
    session check need, whoever keeps the tokens."""

    def issue(self, customer: int, user: str, now: dt.datetime) -> str:
        """A new token for ``user`` of ``customer``."""
        ...

    def use(self, token: str, customer: int, user: str, now: dt.datetime) -> bool:
        """True when ``token`` is live and was issued to this customer and user; refreshes it."""
        ...


@dataclass(frozen=True, slots=True)
class Session:
    """Who a token was issued to."""

    customer: int
    user: str


class Sessions:
    """Tokens in this process's memory: issued, and accepted back while they are fresh."""

    def __init__(self, idle: dt.timedelta, limit: int = MAX_TOKENS) -> None:
        self._idle = idle
        self._limit = limit
        # token → (session, last use); ordered by last use, oldest first.
        self._live: OrderedDict[str, tuple[Session, dt.datetime]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def issue(self, customer: int, user: str, now: dt.datetime) -> str:
        """A new token for ``user`` of ``customer``."""
        self._expire(now)
        token = new_token()
        while token in self._live:  # 62**8 tokens: a clash is rare, but must not share a session
            token = new_token()
        self._live[token] = (Session(customer, user), now)
        while len(self._live) > self._limit:
            self._live.popitem(last=False)
        return token

    def use(self, token: str, customer: int, user: str, now: dt.datetime) -> bool:
        """True when ``token`` is live and was issued to this customer and user; refreshes it."""
        entry = self._live.get(token)
        if entry is None:
            return False
        session, last_use = entry
        if now - last_use >= self._idle:
            del self._live[token]
            return False
        if session != Session(customer, user):
            return False  # someone else's token is no use, but it stays valid for its owner
        self._live[token] = (session, now)
        self._live.move_to_end(token)
        return True

    def _expire(self, now: dt.datetime) -> None:
        """Forget idle tokens; the oldest come first, so stop at the first fresh one."""
        while self._live:
            token, (_session, last_use) = next(iter(self._live.items()))
            if now - last_use < self._idle:
                return
            del self._live[token]


def new_token() -> str:
    """A fresh random token (``secrets``: a token is a bearer credential)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))
