"""Sessions shared between the workers of one gateway (`serve --workers N`).

Every worker accepts from the one client socket (gateway.runtime.workers), and CPR
Direkte clients open a new connection for every request, so a client's logon and
its next lookup usually land on different workers. Each worker's
:class:`~gateway.sessions.table.SessionBroker` only knows the logons it answered; when a
lookup must be rewritten for another side (a split, a canary, a shadow), the
worker that lacks the session asks its siblings for it and keeps a copy.

How (docs/sessions.md, "Several workers"):

- The parent makes a private directory (mode 0700) and gives each worker its path
  and index. Worker ``i`` answers on the Unix socket ``<dir>/<i>.sock``.
- A worker that does not know a client token asks every sibling at once: one
  connection each, the token in, the session (customer, user, home side, every
  side's token) or ``null`` out, one JSON line each way. The first sibling that
  knows it wins; the copy goes into the asking worker's broker.
- Nothing touches the disk: tokens travel between processes of one gateway over
  sockets only its user can reach, and live in memory as before.
- A token no sibling knows is remembered as unknown for a few seconds, so a client
  still using a token from before a restart does not cost a round of questions per
  request. A sibling that does not answer in time is a failure, counted and logged,
  never a reason to hold a request: the request goes on as if no one knew the
  session (the token passes through; the routed side decides).

The copies are independent from then on: each worker touches its own idle clock
and forgets a side's token when that side answers 07 there. That costs a client at
most the one 07 after which it logs on again, as after a gateway restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.observe.events import EventBus, SessionShared
from gateway.runtime.workers import socket_path
from gateway.sessions.shared import decode_session, encode_session
from gateway.sessions.table import Session, SessionBroker

#: How long a worker waits for its siblings' answers. On loopback an idle sibling answers
#: in well under a millisecond; this bounds what a busy or stuck one can add to a request.
PEER_TIMEOUT_S = 0.25
#: How long "no sibling knows this token" is believed. A token is known to the worker that
#: answered its logon before the client ever sees it, so a miss is final until the
#: client logs on again (a new token); the expiry only bounds the memory of the belief.
UNKNOWN_FOR_S = 10.0
#: Tokens remembered as unknown at most (least recently added forgotten first).
MAX_UNKNOWN = 10_000
#: A question or an answer longer than this is not one of ours.
_MAX_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class PeerDirectory:
    """Where one gateway's workers meet (made by the parent, mode 0700), and who this one is."""

    path: Path
    index: int


def encode_question(token: str) -> bytes:
    """The line a worker sends to ask a sibling for ``token``'s session."""
    return json.dumps({"token": token}).encode() + b"\n"


def decode_question(line: bytes) -> str:
    """The token asked for; ValueError for anything else."""
    message = json.loads(line)
    token = message.get("token") if isinstance(message, dict) else None
    if not isinstance(token, str):
        raise ValueError("a question names a token")
    return token


def encode_answer(session: Session | None) -> bytes:
    """The line a sibling answers with: the session, or null when it does not know it."""
    return encode_session(session) + b"\n"


def decode_answer(line: bytes) -> Session | None:
    """The session in a sibling's answer (None: it does not know it); ValueError if malformed."""
    return decode_session(line)


class SessionPeers:
    """One worker's side of session sharing: answers its siblings and asks them."""

    def __init__(
        self,
        where: PeerDirectory,
        broker: SessionBroker,
        bus: EventBus,
        *,
        timeout_s: float = PEER_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = where.path
        self._index = where.index
        self._broker = broker
        self._bus = bus
        self._timeout_s = timeout_s
        self._clock = clock
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Answer siblings on this worker's socket (a stale file from a crash is replaced)."""
        path = socket_path(self._directory, self._index)
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._answer, path=str(path), limit=_MAX_LINE
        )

    async def aclose(self) -> None:
        """Stop answering and remove the socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        socket_path(self._directory, self._index).unlink(missing_ok=True)

    async def fetch(self, client_token: str) -> bool:
        """Ask the siblings for ``client_token``'s session; True once a copy is in the broker."""
        if self._believed_unknown(client_token):
            return False
        siblings = self._siblings()
        if not siblings:
            return False
        pending = {asyncio.ensure_future(self._ask(path, client_token)) for path in siblings}
        failures = []
        expires = asyncio.get_running_loop().time() + self._timeout_s
        try:
            while pending:
                left = expires - asyncio.get_running_loop().time()
                done, pending = await asyncio.wait(
                    pending, timeout=max(left, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    failures.append("timeout")
                    break
                for ask in done:
                    if (exc := ask.exception()) is not None:  # a broken sibling is not ours
                        failures.append(type(exc).__name__)
                    elif (session := ask.result()) is not None:
                        self._broker.adopt(client_token, session)
                        self._bus.emit(SessionShared("found"))
                        return True
        finally:
            for ask in pending:
                ask.cancel()
            if pending:
                await asyncio.wait(pending)  # each closes its connection on the way out
        for failure in failures:
            self._bus.emit(SessionShared("failed", failure))
        if not failures:  # every sibling said no: that is final for this token
            self._remember_unknown(client_token)
            self._bus.emit(SessionShared("unknown"))
        return False

    async def opened(self, client_token: str, session: Session) -> None:
        """Nothing to tell: siblings ask this worker when they need the session."""

    async def forgot(self, client_token: str, left: Session | None) -> None:
        """Nothing to tell: each worker's copy is its own from the moment it was taken."""

    def used(self, client_token: str) -> None:
        """Nothing to touch: a sibling's question keeps the session alive here."""

    def _siblings(self) -> list[Path]:
        mine = socket_path(self._directory, self._index)
        try:
            return sorted(p for p in self._directory.glob("*.sock") if p != mine)
        except OSError:
            return []

    async def _ask(self, path: Path, client_token: str) -> Session | None:
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=_MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # not started yet, or stopping: it knows no session we could use
        try:
            writer.write(encode_question(client_token))
            return decode_answer(await reader.readuntil(b"\n"))
        finally:
            writer.transport.abort()  # nothing more to say; no need to wait for a goodbye

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One sibling's question: the session for a token, if this worker holds it."""
        try:
            async with asyncio.timeout(self._timeout_s):
                token = decode_question(await reader.readuntil(b"\n"))
            # A sibling's client is using the session: that keeps it alive here too.
            writer.write(encode_answer(self._broker.live(token)))
            await writer.drain()
        except (
            OSError,
            ValueError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            self._bus.emit(SessionShared("failed", f"answering: {type(exc).__name__}"))
        finally:
            writer.close()

    def _believed_unknown(self, client_token: str) -> bool:
        expires = self._unknown.get(client_token)
        if expires is None:
            return False
        if self._clock() < expires:
            return True
        del self._unknown[client_token]
        return False

    def _remember_unknown(self, client_token: str) -> None:
        self._unknown.pop(client_token, None)
        self._unknown[client_token] = self._clock() + UNKNOWN_FOR_S
        while len(self._unknown) > MAX_UNKNOWN:
            self._unknown.popitem(last=False)
