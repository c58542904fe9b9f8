"""`cpr-gateway traffic`: realistic lookups against a CPR Direkte endpoint, bounded in count, time.

Each caller behaves like an existing client: it logs on once, makes every lookup
on a new connection with that token, and logs on again after a 07 (then retries
the lookup once). Lookups are spread over the callers in turn, PNRs are drawn from
the given list with a fixed seed (so a run can be repeated), and requests are
started at ``rate`` per second (open loop: a slow server does not slow the
schedule, it raises the number in flight, up to :data:`MAX_IN_FLIGHT`).

The report counts answers by FEJLNR; it never holds a PNR.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cpr_devtools.client import Credentials, Endpoint, LogonFailed, exchange, logon
from cpr_mainframe.register.store import Register
from gateway.codec import LookupRequest
from gateway.codec.headers import HEADER_LENGTH, answer_fejlnr
from gateway.model import FejlNr
from gateway.runtime.tasks import TaskSet
from gateway.tls import client_context

#: Lookups waiting for an answer at most. A server slower than the rate would otherwise
#: pile up connections without end; beyond this the schedule waits for a free slot.
MAX_IN_FLIGHT = 64


class Caller(Protocol):
    """Who sends lookups: wire credentials and the password to log on with."""

    @property
    def who(self) -> Credentials:
        """Transaction code, customer number and user id."""
        ...

    @property
    def password(self) -> str:
        """The logon password."""
        ...


@dataclass(frozen=True, slots=True)
class DemoCaller:
    """A demo customer of the shipped emulator.yaml."""

    who: Credentials
    password: str


#: The demo customers: a private company (PRIV) and an authority (OFF4).
DEMO_CALLERS = (
    DemoCaller(Credentials("PRIV", "0001", "DEMO0001"), "Demo#123"),
    DemoCaller(Credentials("OFF4", "0002", "DEMO0002"), "Demo#456"),
)


@dataclass
class TrafficReport:
    """What a run did."""

    #: Lookups started (each counted once, whatever its retries).
    sent: int = 0
    #: Lookup answers by FEJLNR (the answer after a re-logon when the first was 07).
    answers: Counter[str] = field(default_factory=Counter)
    #: Successful logons, first ones and re-logons after a 07.
    logons: int = 0
    #: Logons refused, by FEJLNR; a refused caller sends nothing more.
    logon_refusals: Counter[str] = field(default_factory=Counter)
    #: Lookups that got no answer (no connection, no token, a cut-off answer).
    failures: int = 0
    #: Seconds from the first request to the last answer.
    elapsed_s: float = 0.0

    @property
    def answered(self) -> int:
        """Lookups that got an answer."""
        return sum(self.answers.values())

    def summary(self) -> str:
        """One line for an operator."""
        by_fejlnr = ", ".join(f"{code}: {n}" for code, n in sorted(self.answers.items()))
        return (
            f"{self.sent} lookups in {self.elapsed_s:.1f}s ({by_fejlnr or 'no answers'}); "
            f"{self.logons} logons, {self.failures} without answer"
        )


class _Session:
    """One caller's token; one logon at a time however many lookups wait for it."""

    def __init__(self, caller: Caller, endpoint: Endpoint, report: TrafficReport) -> None:
        self.caller = caller
        self._endpoint = endpoint
        self._report = report
        self._token = ""
        self._refused = False
        self._lock = asyncio.Lock()

    async def token(self, stale: str = "") -> str | None:
        """A live token: the current one, or a new logon when it is missing or ``stale``.

        None once a logon was refused: retrying would only lock the user (spec §7).
        """
        async with self._lock:
            if self._refused:
                return None
            if self._token and self._token != stale:
                return self._token
            try:
                self._token = await logon(self._endpoint, self.caller.who, self.caller.password)
            except LogonFailed as refused:
                self._report.logon_refusals[refused.fejlnr.value] += 1
                self._refused = True
                return None
            except (OSError, ssl.SSLError, TimeoutError):
                return None  # no connection now; the next lookup tries again
            self._report.logons += 1
            return self._token


async def run_traffic(
    endpoint: Endpoint,
    pnrs: Sequence[str],
    *,
    count: int,
    rate: float,
    users: Sequence[Caller] = DEMO_CALLERS,
    time_limit: float | None = None,
    seed: int = 1,
) -> TrafficReport:
    """Send ``count`` lookups at ``rate`` per second, stopping early after ``time_limit`` s.

    Lookups already started when the time is up still get their answer.
    """
    if not pnrs or not users or count < 0 or rate <= 0:
        raise ValueError("traffic needs PNRs, callers, a count >= 0 and a rate > 0")
    report = TrafficReport()
    sessions = [_Session(user, endpoint, report) for user in users]
    draw = random.Random(seed)
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks = TaskSet()
    loop = asyncio.get_running_loop()
    started = loop.time()
    clock = time.perf_counter()
    for n in range(count):
        due = started + n / rate
        if time_limit is not None and due - started >= time_limit:
            break
        await asyncio.sleep(max(0.0, due - loop.time()))
        await slots.acquire()
        session, pnr = sessions[n % len(sessions)], draw.choice(pnrs)
        report.sent += 1
        tasks.spawn(_one(session, endpoint, pnr, report, slots), name=f"traffic:{n}")
    for _slot in range(MAX_IN_FLIGHT):
        await slots.acquire()  # every slot back: every lookup has its answer (or gave up)
    report.elapsed_s = time.perf_counter() - clock
    return report


async def _one(
    session: _Session,
    endpoint: Endpoint,
    pnr: str,
    report: TrafficReport,
    slots: asyncio.Semaphore,
) -> None:
    """One lookup, with one re-logon and retry after a 07, as every client does."""
    try:
        fejlnr = await _lookup(session, endpoint, pnr)
        if fejlnr is None:
            report.failures += 1
        else:
            report.answers[fejlnr] += 1
    finally:
        slots.release()


async def _lookup(session: _Session, endpoint: Endpoint, pnr: str) -> str | None:
    """The FEJLNR of the final answer, or None when there was none."""
    stale = ""
    for _attempt in range(2):
        token = await session.token(stale)
        if token is None:
            return None
        who = session.caller.who
        record = LookupRequest(who.transaction, who.customer, token, who.user, pnr).encode()
        try:
            answer = await exchange(endpoint, record)
        except (OSError, ssl.SSLError, TimeoutError):
            return None
        if len(answer) < HEADER_LENGTH:
            return None
        fejlnr = answer_fejlnr(answer).decode("latin-1")
        if fejlnr != FejlNr.NEW_LOGON.value:
            return fejlnr
        stale = token
    return FejlNr.NEW_LOGON.value


async def run_traffic_command(args: argparse.Namespace) -> int:
    """``cpr-gateway traffic``: PNRs from ``args.register``; prints one summary line.

    Reads ``host``, ``port``, ``plaintext``, ``ca``, ``register``, ``count``, ``rate``,
    ``time_limit`` (seconds or None) and ``seed``; 0 when every lookup was answered 00.
    """
    register = Register.open(args.register)
    try:
        pnrs = register.pnrs()
    finally:
        register.close()
    context = None if args.plaintext else client_context(args.ca)
    endpoint = Endpoint(args.host, args.port, context, "localhost")
    report = await run_traffic(
        endpoint, pnrs, count=args.count, rate=args.rate, time_limit=args.time_limit, seed=args.seed
    )
    print(report.summary())
    return 0 if report.answers[FejlNr.OK.value] == report.sent else 1
