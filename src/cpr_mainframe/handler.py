"""One framed request → its answer bytes, with every FEJLNR of spec §4.3 in its situation.

No sockets here: the server hands in the request and the client's address and
writes what comes back. Checks run in a fixed order and the first that fails
decides the answer (the server has already answered 04 in a maintenance window
and 08 over capacity, before a request gets this far):

Logon (35 bytes; a non-blank NYT KENDEORD makes it a password change)
    11 DATA_TYPE is not ``0`` · 06 KUNDENR unknown · 16 source address outside the
    customer's allow-list · 01 user unknown, locked, or wrong password (counts towards
    the lock) · 14 transaction code not granted to the user · 03 new password breaks
    §7 · 02 password older than 90 days and no new one · 00 with a fresh token.

Lookup / subscription (39 bytes)
    10 ABON_TYPE not ``0``/``1``/``3`` · 11 DATA_TYPE not ``0``/``6`` · 06 · 16 ·
    07 token unknown, idle too long, or issued to another customer or user ·
    14 · 17 PNR blank, or (project rule) not 10 digits or not starting with a
    calendar date, since 05 is never a format error · 05 PNR unknown · 00.

The user is authenticated before its grants are checked (01 before 14), so a
stranger cannot learn which transactions a user id has. Error answers to
lookups are the 28-byte header alone; a failed logon's token is blank.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cpr_accounts.auth import Authenticator
from cpr_accounts.clock import Clock
from cpr_accounts.customers import Customer, IPAddress, User
from cpr_accounts.state import StateStore
from cpr_accounts.tokens import Sessions
from cpr_mainframe.register.store import Register
from cpr_mainframe.schema import EmulatorConfig, local_zone
from gateway.codec import (
    LogonAnswer,
    LogonRequest,
    LookupAnswer,
    LookupRequest,
    Record,
    Request,
)
from gateway.codec import customer_number as parse_customer
from gateway.domain.calendar import production_date
from gateway.domain.person import birth_date_of
from gateway.model import Family, FejlNr, Operation
from gateway.render import render_answer


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one request and what the request log line says about it."""

    operation: Operation
    fejlnr: FejlNr
    answer: bytes
    #: KUNDENR as a number; None when the request's was not a number.
    customer: int | None


def refusal(request: Request, fejlnr: FejlNr) -> Outcome:
    """An error answer echoing ``request``: blank-token logon answer, or header alone."""
    customer = parse_customer(request.customer)
    if isinstance(request, LogonRequest):
        answer = LogonAnswer(request.customer, request.user, fejlnr).encode()
    else:
        # With no records the family does not show in the bytes; PRIV also covers ADRM & co.
        answer = LookupAnswer.for_request(request, fejlnr).encode(Family.PRIV)
    return Outcome(request.operation, fejlnr, answer, customer)


def in_maintenance(config: EmulatorConfig, now: dt.datetime) -> bool:
    """True when the service is closed: forced by config, or inside a daily window."""
    if config.maintenance:
        return True
    local = now.astimezone(local_zone()).time()
    return any(window.contains(local) for window in config.maintenance_windows)


def _family(transaction: str) -> Family | None:
    try:
        return Family(transaction)
    except ValueError:
        return None


class Handler:
    """Answers requests from config, register, state store and live tokens."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        register: Register,
        state: StateStore,
        auth: Authenticator,
        sessions: Sessions,
        clock: Clock,
    ) -> None:
        self._config = config
        self._register = register
        self._state = state
        self._auth = auth
        self._sessions = sessions
        self._clock = clock

    async def handle(self, request: Request, peer: IPAddress | None) -> Outcome:
        """The answer to ``request`` from a client at ``peer`` (None when unknown)."""
        if isinstance(request, LogonRequest):
            return await self._logon(request, peer)
        return self._lookup(request, peer)

    def _customer(self, request: Request, peer: IPAddress | None) -> Customer | FejlNr:
        """The customer the request names and may act for, or 06 / 16."""
        number = parse_customer(request.customer)
        customer = self._config.customer(number) if number is not None else None
        if customer is None:
            return FejlNr.CUSTOMER_UNKNOWN
        if peer is None or not customer.allows(peer):
            return FejlNr.IP_DENIED
        return customer

    async def _logon(self, request: LogonRequest, peer: IPAddress | None) -> Outcome:
        if request.data_type != "0":
            return refusal(request, FejlNr.DATA_TYPE_UNKNOWN)
        customer = self._customer(request, peer)
        if isinstance(customer, FejlNr):
            return refusal(request, customer)
        user = customer.user(request.user)
        if user is None:  # as slow as a known user's check: ids cannot be probed by timing
            await self._auth.refuse(request.password)
        if user is None or not await self._auth.verify(customer.number, user.id, request.password):
            return refusal(request, FejlNr.BAD_CREDENTIALS)
        if not _granted(user, request.transaction):
            return refusal(request, FejlNr.TRANSACTION_DENIED)
        now = self._clock()
        verdict = await self._auth.renew(customer.number, user.id, request.new_password, now)
        if verdict is not FejlNr.OK:
            return refusal(request, verdict)
        token = self._sessions.issue(customer.number, user.id, now)
        answer = LogonAnswer(request.customer, request.user, FejlNr.OK, token).encode()
        return Outcome(request.operation, FejlNr.OK, answer, customer.number)

    def _lookup(self, request: LookupRequest, peer: IPAddress | None) -> Outcome:
        if (unknown := request.unknown_type()) is not None:
            return refusal(request, unknown)
        customer = self._customer(request, peer)
        if isinstance(customer, FejlNr):
            return refusal(request, customer)
        now = self._clock()
        user = customer.user(request.user)
        if user is None or not self._sessions.use(request.token, customer.number, user.id, now):
            return refusal(request, FejlNr.NEW_LOGON)
        family = _family(request.transaction)
        if family is None or family not in user.grants:
            return refusal(request, FejlNr.TRANSACTION_DENIED)
        if birth_date_of(request.pnr) is None:  # blank included: both are 17
            return refusal(request, FejlNr.PNR_MISSING)
        person = self._register.get(request.pnr)
        if person is None:
            return refusal(request, FejlNr.PNR_UNKNOWN)
        self._change_subscription(request, customer.number, now)
        records: tuple[Record, ...] = ()
        if request.data_type == "6":
            today = production_date(now)
            records = render_answer(person, family, customer.task, customer.number, today)
        answer = LookupAnswer.for_request(request, FejlNr.OK, records).encode(family)
        return Outcome(request.operation, FejlNr.OK, answer, customer.number)

    def _change_subscription(self, request: LookupRequest, customer: int, now: dt.datetime) -> None:
        """ABON_TYPE 1 subscribes, 3 unsubscribes; both are idempotent (project rule)."""
        if request.operation is Operation.SUBSCRIBE:
            self._state.subscriptions.add(customer, request.pnr, now)
        elif request.operation is Operation.UNSUBSCRIBE:
            self._state.subscriptions.remove(customer, request.pnr)


def _granted(user: User, transaction: str) -> bool:
    family = _family(transaction)
    return family is not None and family in user.grants
