"""Sessions beyond this process's table: the one interface the dispatcher shares them through.

Each process keeps the sessions it uses in its own :class:`~.table.SessionBroker`.
What makes a session known elsewhere depends on the deployment's shape, and each
shape has exactly one mechanism (docs/sessions.md, "Where sessions live"):

- one gateway, several workers, nothing shared (the embedded default): the workers
  ask each other over Unix sockets (:mod:`.peers`);
- several replicas (and their workers): every process reads and writes one Redis
  (:mod:`.redis_store`).

Both answer :class:`SharedSessions`. A call that fails is the mechanism's to count
and log; the dispatcher only ever hears "found" or "not found", and a request never
waits longer than the mechanism's deadline.

The JSON form of a session (customer, user, home side, every side's token) is here
too: the sockets and Redis carry the same one. It holds no PNR and no password.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from gateway.sessions.table import Session


class SharedSessions(Protocol):
    """Where the sessions this process has not seen are found, and where its own are told."""

    async def fetch(self, client_token: str) -> bool:
        """Find ``client_token``'s session elsewhere; True once a copy is in this table."""
        ...

    async def opened(self, client_token: str, session: Session) -> None:
        """A logon answered here opened ``session``: make it known to the others."""
        ...

    async def forgot(self, client_token: str, left: Session | None) -> None:
        """A side answered 07 here: ``left`` is the session without its token (None: gone)."""
        ...

    def used(self, client_token: str) -> None:
        """This table's copy served a request: the shared one must not expire meanwhile."""
        ...

    async def aclose(self) -> None:
        """Stop; nothing is asked or told afterwards."""
        ...


def encode_session(session: Session | None) -> bytes:
    """The JSON form of ``session``; ``null`` for none."""
    if session is None:
        return b"null"
    body = {
        "customer": session.customer,
        "user": session.user,
        "home": session.home,
        "tokens": dict(session.tokens),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_session(text: str | bytes) -> Session | None:
    """The session in its JSON form (None for ``null``); ValueError if it is not one."""
    message: Any = json.loads(text)
    if message is None:
        return None
    if not isinstance(message, dict):
        raise ValueError("a session is an object or null")
    customer, user, home, tokens = (message.get(k) for k in ("customer", "user", "home", "tokens"))
    if not (
        (customer is None or (isinstance(customer, int) and not isinstance(customer, bool)))
        and isinstance(user, str)
        and isinstance(home, str)
        and isinstance(tokens, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in tokens.items())
        and home in tokens
    ):
        raise ValueError("a session has customer, user, home and tokens")
    return Session(customer, user, home, tokens)
