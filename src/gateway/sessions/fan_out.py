"""A client's logon: guarded, answered by its routed side, repeated on the other sides.

The client's logon is its primary's business (docs/sessions.md, "The other sides' logons"): the
answer is the routed side's; the repeats on the other sides get ``fan_out_timeout`` before it
goes back, and one still running then goes on in the background, its token joining the session
when it comes. A side whose repeat failed or was late is skipped for :data:`FAN_OUT_PAUSE_S`.

Two guards, both in memory and per process: ``limits.failed_logons``
(:class:`~gateway.sessions.logon_guard.LogonGuard`) answers a customer guessed at from one
address 01 without asking any side, and a repeat another side refused with 01 is not made
again with the same password (:class:`~gateway.sessions.refused_repeats.RefusedRepeats`), so
the gateway's repeats never lock a user out there. Repeats are sent marked as such
(``repeat=True``: the gRPC kind says so to the services).

The calls go through the dispatcher (a :data:`Call`, bound to the request's routing), which
holds each backend's lease and turns its failures into answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from gateway.codec import FramedRequest, LogonRequest, customer_number, refusal, user_id
from gateway.codec.headers import answer_fejlnr, answer_token
from gateway.config.schema import Limits, Sessions
from gateway.model import FejlNr, Operation
from gateway.observe.events import EventBus, LogonRefused, SessionEvent
from gateway.routing import Decision
from gateway.runtime.tasks import TaskSet
from gateway.sessions.broker import open_session
from gateway.sessions.logon_guard import LogonGuard
from gateway.sessions.refused_repeats import RefusedRepeats
from gateway.sessions.shared import SharedSessions
from gateway.sessions.table import SessionBroker

_OK = FejlNr.OK.value.encode()
_BAD_CREDENTIALS = FejlNr.BAD_CREDENTIALS.value.encode()
#: Seconds no logon is repeated on a side whose last repeat failed or was late: a hung side
#: then costs one logon its fan_out_timeout now and then, not every logon.
FAN_OUT_PAUSE_S = 5.0

#: One backend call for the logon: (decision, request, is it a repeat) → (answer, why it
#: failed or ""); a failed call's answer is its error answer, never an exception.
Call = Callable[[Decision, FramedRequest, bool], Awaitable[tuple[bytes, str]]]


class LogonFanOut:
    """Logons for the dispatcher: one per process, shared by every connection."""

    def __init__(
        self, bus: EventBus, sessions: SessionBroker, shared: SharedSessions | None
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._shared = shared
        #: Seconds a logon waits for each other side's logon (sessions.fan_out_timeout).
        self.fan_out_timeout = Sessions().fan_out_timeout
        #: Refused logons per customer and address (limits.failed_logons; set_limit on reload).
        self.guard = LogonGuard(Limits().failed_logons)
        #: Sides whose last repeated logon failed or was late, and until when (monotonic) no
        #: logon is repeated there.
        self._paused: dict[str, float] = {}
        #: Repeats other sides refused with 01, held back for a while (by password digest).
        self._refused = RefusedRepeats()
        #: Repeated logons still running after their logon was answered.
        self._late = TaskSet()

    async def aclose(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for repeats still running, then cancel them."""
        await self._late.drain(timeout_s, "shutdown: repeated logons too slow")

    async def logon(
        self,
        decision: Decision,
        request: LogonRequest,
        client: FramedRequest,
        *,
        peer: str,
        others: frozenset[str],
        call: Call,
    ) -> tuple[bytes, str]:
        """Log on at the routed side; on success repeat it on ``others`` and open a session.
        A customer over ``limits.failed_logons`` from this address (the client's ``origin``, or
        ``peer`` when it is not known) is answered 01 at once."""
        number = customer_number(request.customer)
        customer = request.customer.strip() if number is None else str(number)
        address = client.origin or peer
        if self.guard.blocks(customer, address):
            self._bus.emit(LogonRefused(customer, user_id(request.user), address))
            refused = refusal(request, FejlNr.BAD_CREDENTIALS)
            return refused, "limits.failed_logons: answered by the gateway"
        answer, error = await call(decision, client, False)
        fejlnr = answer_fejlnr(answer)
        if fejlnr == _BAD_CREDENTIALS:
            self.guard.failed(customer, address)
        if fejlnr != _OK:
            return answer, error
        repeats = self._repeat(decision, _plain_logon(request), others, client, call)
        tokens, late = await self._gather(repeats)
        home = decision.backend
        client_token, session = open_session(self._sessions, request, answer, home, tokens)
        if self._shared is not None:
            await self._shared.opened(client_token, session)
        for side, repeat in late.items():
            # Late: left out of the next logons for a while, as a failed side is.
            self._paused[side] = time.monotonic() + FAN_OUT_PAUSE_S
            self._late.spawn(self._late_token(client_token, side, repeat), name="repeat")
        self._bus.emit(SessionEvent("opened", decision.backend))
        return answer, error

    async def _gather(
        self, repeats: dict[str, asyncio.Task[str | None]]
    ) -> tuple[dict[str, str], dict[str, asyncio.Task[str | None]]]:
        """The tokens the repeats gave within ``fan_out_timeout``, and those still running."""
        try:
            if repeats:
                await asyncio.wait(repeats.values(), timeout=self.fan_out_timeout)
        except BaseException:  # this request was cancelled: its repeats still end watched
            for repeat in repeats.values():
                self._late.spawn(_finished(repeat), name="repeat")
            raise
        tokens: dict[str, str] = {}
        late: dict[str, asyncio.Task[str | None]] = {}
        for side, repeat in repeats.items():
            if not repeat.done():
                late[side] = repeat
            elif (token := repeat.result()) is not None:
                tokens[side] = token
        return tokens, late

    def _repeat(
        self,
        decision: Decision,
        logon: LogonRequest,
        sides: frozenset[str],
        client: FramedRequest,
        call: Call,
    ) -> dict[str, asyncio.Task[str | None]]:
        """The logon repeated on each other side (on behalf of the client at its origin),
        each a task giving that side's token or None; the password is kept only as an HMAC
        (a refused repeat's). A side whose last repeat failed or was late is skipped for a
        while, and so is one that refused this user's repeat with this password lately."""
        sent = FramedRequest(logon, logon.encode(), client.origin)
        now = time.monotonic()
        user = (customer_number(logon.customer), user_id(logon.user))
        refused = self._refused

        async def one(side: str) -> str | None:
            answer, error = await call(replace(decision, backend=side), sent, True)
            fejlnr = answer_fejlnr(answer)
            if fejlnr == _OK:
                refused.accepted(side, *user)
                return answer_token(answer)
            if fejlnr == _BAD_CREDENTIALS:  # not again with this password: it would count
                refused.refused(side, *user, logon.password)
            if error:  # the side failed or timed out, not a refusal of this user's logon
                self._paused[side] = time.monotonic() + FAN_OUT_PAUSE_S
            self._bus.emit(SessionEvent("side_logon_failed", side))
            return None

        repeats = {}
        for side in sorted(sides):
            if self._paused.get(side, 0.0) > now:
                self._bus.emit(SessionEvent("side_logon_skipped", side))
            elif refused.held(side, *user, logon.password):
                self._bus.emit(SessionEvent("side_logon_held", side))
            else:
                repeats[side] = asyncio.ensure_future(one(side))
        return repeats

    async def _late_token(
        self, client_token: str, side: str, repeat: asyncio.Task[str | None]
    ) -> None:
        """A repeat that outlived the logon's budget: its token joins the session (and the
        shared store) when it comes, and the side is asked again from then on."""
        token = await repeat
        if token is None:
            return
        self._paused.pop(side, None)
        self._bus.emit(SessionEvent("side_logon_late", side))
        session = self._sessions.add_token(client_token, side, token)
        if session is not None and self._shared is not None:
            await self._shared.opened(client_token, session)


async def _finished(repeat: asyncio.Task[str | None]) -> None:
    """Wait for a repeated logon nobody needs any more (its result is dropped)."""
    await repeat


def _plain_logon(request: LogonRequest) -> LogonRequest:
    """The logon other sides get: a password change happened on the routed side only, so
    they are asked to log on with the new password, never to change theirs (a write goes
    to exactly one side)."""
    if request.operation is Operation.CHANGE_PASSWORD:
        return replace(request, password=request.new_password.ljust(8), new_password="")
    return request
