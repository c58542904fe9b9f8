"""Sessions that survive mixed routing: the gateway brokers tokens between sides.

A consumer logs on once and then looks up many times, each on a new connection,
and each request may be routed to a different side (the mainframe or the new
services), each of which issues and checks its own tokens. The broker keeps, per
client token, the token every other side issued for the same logon.

Design (see docs/sessions.md):

- The **client's token is the token of the side that answered its logon**. On
  the legacy route nothing is rewritten, so answers stay byte-identical, and a
  gateway that lost its memory (restart, another replica) still passes the token
  through to a side that knows it.
- After a successful logon the gateway logs on to every other side with the
  same record and remembers their tokens. No password is kept: the record is
  used once, in memory, and dropped.
- A request routed to a side is rewritten to carry that side's token, and the
  answer is rewritten back to carry the client's token. Unknown tokens pass
  through unchanged: the side answers 07 if it does not know them either, and
  every client logs on again after a 07.
- A side that answers 07 loses its token in the session; a read routed to a
  side without a token falls back to the side that answered the logon.

Pure bookkeeping: no I/O here; the dispatcher does the calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

#: Sessions kept at most. A logon costs one entry; beyond the bound the least
#: recently used session is forgotten (its client gets, at worst, one 07).
DEFAULT_MAX_SESSIONS = 100_000


@dataclass(frozen=True, slots=True)
class Session:
    """One client logon as the gateway knows it."""

    customer: int | None
    user: str
    #: Backend that answered the logon; the client's token is its token.
    home: str
    #: Token per backend name, the home backend's included.
    tokens: Mapping[str, str] = field(hash=False)
    last_used: float = 0.0

    def token_for(self, backend: str) -> str | None:
        """The token ``backend`` issued for this logon, if it has one."""
        return self.tokens.get(backend)


class SessionBroker:
    """Maps a client token to every side's token for the same logon, with idle expiry."""

    def __init__(
        self,
        *,
        idle_s: float,
        clock: Callable[[], float],
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def idle_s(self) -> float:
        """Seconds a session lives without use."""
        return self._idle_s

    def set_idle(self, idle_s: float) -> None:
        """Expire sessions after ``idle_s`` seconds unused from now on (a reload's new value)."""
        self._idle_s = idle_s

    def open(
        self,
        client_token: str,
        customer: int | None,
        user: str,
        home: str,
        tokens: Mapping[str, str],
    ) -> Session:
        """Remember a successful logon answered by ``home`` with ``client_token``."""
        session = Session(customer, user, home, {**tokens, home: client_token}, self._clock())
        self._sessions.pop(client_token, None)
        self._sessions[client_token] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def adopt(self, client_token: str, session: Session) -> None:
        """Keep a copy of a session held elsewhere: by a sibling worker (.peers) or in the
        shared store (.redis_store)."""
        self.open(client_token, session.customer, session.user, session.home, session.tokens)

    def find(self, client_token: str, customer: int | None, user: str) -> Session | None:
        """The live session for this token, customer and user, touching its idle clock."""
        session = self.live(client_token)
        if session is None or (session.customer, session.user) != (customer, user):
            return None  # a token of another customer or user is not theirs to use
        return session

    def live(self, client_token: str) -> Session | None:
        """The live session for this token, whoever it belongs to, touching its idle clock."""
        session = self._sessions.get(client_token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self._idle_s:
            del self._sessions[client_token]
            return None
        # Made directly: dataclasses.replace looks the fields up on every call.
        touched = Session(session.customer, session.user, session.home, session.tokens, now)
        self._sessions[client_token] = touched
        self._sessions.move_to_end(client_token)
        return touched

    def add_token(self, client_token: str, backend: str, token: str) -> Session | None:
        """``backend`` answered the logon's repeat late with ``token``: the session holds it
        from now on. The session as it is then, None when it has gone meanwhile."""
        session = self._sessions.get(client_token)
        if session is None:
            return None
        self._sessions[client_token] = added = replace(
            session, tokens={**session.tokens, backend: token}
        )
        return added

    def forget(self, client_token: str, backend: str) -> Session | None:
        """``backend`` no longer knows its token for this logon (it answered 07); the
        session left, None when it is gone (the home side forgot it, or it was not here)."""
        session = self._sessions.get(client_token)
        if session is None:
            return None
        if backend == session.home:
            del self._sessions[client_token]
            return None
        tokens = {name: t for name, t in session.tokens.items() if name != backend}
        self._sessions[client_token] = left = replace(session, tokens=tokens)
        return left
