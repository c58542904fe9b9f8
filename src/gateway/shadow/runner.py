"""Shadow traffic off the answer path: copies of answered requests, compared and counted.

The dispatcher answers the client first and only then hands the request to
:meth:`ShadowRunner.submit`, which never waits and never raises. A bounded
number of shadowed requests run at once (``shadowing.max_in_flight``); a bounded
number wait for a slot (``max_queued``); anything beyond is dropped and counted
(outcome ``dropped``), and so is every copy offered while the event loop runs
later than ``shadowing.shed_lag`` (:mod:`gateway.runtime.pressure`): a machine out of CPU
spends it on the clients, not on shadows. The client's answer is the control: a shadow's lateness,
failure or difference becomes metrics and log lines, never a client error.

Each copy carries its side's token: the session table knows it from the fan-out
logon, and :mod:`gateway.sessions.broker` rewrites the copy as it does the client's
own request (docs/sessions.md). A session without a token for the shadow side is an
``error`` (``no_session``): the runner never logs on by itself. The copy's answer
carries the client's token before it is compared with the client's answer. A copy
goes to the backends its request was routed with (:class:`CopyBackends`, carried
on the job), holding their leases, even after a reload has replaced them.

Every comparison updates the in-memory :class:`Tally` of its (route, shadow
backend), emits a :class:`ShadowCompleted` and a :class:`ShadowVerdict`, and goes
to the mismatch store through the :class:`SampleWriter` (off the loop), with the
PNR replaced by its pseudonym. A noise copy (a second primary instance) is
compared with the client's answer too and counted as noise for every shadow of
the route.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.codec import FramedRequest, LogonRequest, LookupRequest, Request
from gateway.codec.headers import answer_token
from gateway.comparison import Noise, Shadow, ShadowPolicy
from gateway.errors import BackendError, BackendTimeout
from gateway.model import Family
from gateway.observe.events import EventBus, ShadowCompleted, ShadowQueue, ShadowVerdict
from gateway.runtime.tasks import TaskSet
from gateway.sessions.broker import for_client, for_side, session_of
from gateway.sessions.table import SessionBroker
from gateway.shadow.compare import Comparison, compare, placeholder
from gateway.shadow.noise import Tally, verdict
from gateway.shadow.pseudonym import Pseudonymiser
from gateway.shadow.store import Sample
from gateway.shadow.writer import SampleWriter


class CopyBackends(Protocol):
    """The backends a shadowed request was routed with, as its copies call them."""

    async def call(self, backend: str, request: FramedRequest, *, deadline: float) -> bytes:
        """``backend``'s answer to ``request`` within ``deadline`` seconds, holding the
        backend's lease so that a reload cannot close it under the copy; BackendError."""
        ...


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """An answered request whose decision names shadows: what the runner needs to copy it."""

    #: How the request's route is shadowed.
    policy: ShadowPolicy
    #: The backend that answered the client (after a session fallback, the home side).
    backend: str
    #: The shadows this request was sampled for.
    shadows: tuple[Shadow, ...]
    #: The noise copy it was sampled for, if any.
    noise: Noise | None
    #: The request as the client sent it (with the client's token, and its address: the
    #: copies are sent on the client's behalf, and backends are told whose they are).
    client: FramedRequest
    #: The answer the client got (with the client's token): the control.
    answer: bytes
    #: Where the copies go: the backends the request was routed with.
    backends: CopyBackends

    @property
    def request(self) -> Request:
        """The client's request, parsed."""
        return self.client.request


@dataclass(frozen=True, slots=True)
class _Failed:
    """A copy that produced no answer to compare."""

    outcome: str
    reason: str


class ShadowRunner:
    """Runs shadow copies with bounded concurrency and a bounded wait queue."""

    def __init__(
        self,
        bus: EventBus,
        sessions: SessionBroker,
        *,
        max_in_flight: int = 64,
        max_queued: int = 256,
        writer: SampleWriter | None = None,
        pseudonymiser: Pseudonymiser | None = None,
        lag: Callable[[], float] = lambda: 0.0,
        shed_lag_s: float = math.inf,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._lag = lag
        self._shed_lag_s = shed_lag_s
        self._writer = writer
        self._pseudonymiser = pseudonymiser
        self._redact = pseudonymiser.pnr if pseudonymiser else placeholder
        # Bounded by max_queued (checked in submit): the reason is the config's.
        self._queue: collections.deque[ShadowJob] = collections.deque()
        self._in_flight = 0
        self._closing = False
        self._tasks = TaskSet()
        self._started = 0
        self._tallies: dict[tuple[str, str], Tally] = {}

    @property
    def in_flight(self) -> int:
        """Shadowed requests being worked on."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Shadowed requests waiting for a slot."""
        return len(self._queue)

    def tally(self, route: str, backend: str) -> Tally:
        """The comparisons so far of ``backend`` shadowing ``route`` (noise included)."""
        return self._tallies.setdefault((route, backend), Tally())

    def submit(self, job: ShadowJob) -> None:
        """Start ``job`` now, queue it, or drop it (counted); never waits."""
        if self._closing:
            self._dropped(job, "shutdown")
        elif self._lag() > self._shed_lag_s:
            self._dropped(job, "overload")  # the loop is late: the clients come first
        elif self._in_flight < self._max_in_flight:
            self._start(job)
        elif len(self._queue) < self._max_queued:
            self._queue.append(job)
            self._bus.emit(ShadowQueue(len(self._queue)))
        else:
            self._dropped(job, "queue_full")

    async def aclose(self, grace_s: float) -> None:
        """Drop what waits; give running copies ``grace_s`` to finish, then cancel them."""
        self._closing = True
        while self._queue:
            self._dropped(self._queue.popleft(), "shutdown")
        self._bus.emit(ShadowQueue(0))
        await self._tasks.drain(grace_s, "shutdown: shadow copy too slow")

    def _start(self, job: ShadowJob) -> None:
        self._in_flight += 1
        self._started += 1
        self._tasks.spawn(self._run(job), name=f"shadow:{job.policy.route}:{self._started}")

    def _next(self) -> None:
        """A slot is free: start the oldest waiting job."""
        if self._queue and not self._closing and self._in_flight < self._max_in_flight:
            self._start(self._queue.popleft())
            self._bus.emit(ShadowQueue(len(self._queue)))

    async def _run(self, job: ShadowJob) -> None:
        try:
            copies = [self._shadow(job, s.backend, s.deadline) for s in _shadows(job)]
            noise = job.noise
            if noise is not None and job.backend == job.policy.primary:
                copies.append(self._noise(job, noise.backend))
            await asyncio.gather(*copies)
        finally:
            self._in_flight -= 1
            self._next()

    async def _shadow(self, job: ShadowJob, backend: str, deadline: float) -> None:
        """One shadow copy: call, compare, count, store."""
        answer = await self._copy(job, backend, deadline)
        if isinstance(answer, _Failed):
            self._emit(job, backend, answer.outcome, answer.reason)
            return
        comparison = self._compare(job, answer)
        tally = self.tally(job.policy.route, backend)
        tally.record_comparison(comparison)
        self._emit(job, backend, _outcome(comparison), "", _fields(comparison))
        operation = job.request.operation.value
        judged = verdict(tally, operation, job.policy.thresholds)
        self._bus.emit(ShadowVerdict(job.policy.route, backend, operation, judged.value))
        self._store(job, backend, comparison, noise=False)

    async def _noise(self, job: ShadowJob, backend: str) -> None:
        """One noise copy: the same side twice; what differs is noise for every shadow."""
        answer = await self._copy(job, backend, job.policy.deadline)
        if isinstance(answer, _Failed):
            self._emit(job, backend, answer.outcome, answer.reason, noise=True)
            return
        comparison = self._compare(job, answer)
        for shadow in job.policy.shadows:
            self.tally(job.policy.route, shadow.backend).record_noise(comparison)
        fields = _fields(comparison)
        self._emit(job, backend, _outcome(comparison), "", fields, noise=True)
        self._store(job, backend, comparison, noise=True)

    async def _copy(self, job: ShadowJob, backend: str, deadline: float) -> bytes | _Failed:
        """``backend``'s answer with the client's token, or why there is none."""
        sent = self._for_side(job.client, backend)
        if sent is None:
            return _Failed("error", "no_session")
        try:
            answer = await job.backends.call(backend, sent, deadline=deadline)
        except BackendTimeout:
            return _Failed("timeout", "timeout")
        except BackendError as exc:
            return _Failed("error", exc.kind)
        except asyncio.CancelledError:
            self._emit(job, backend, "dropped", "shutdown", noise=backend not in _names(job))
            raise
        return for_client(answer, sent, _client_token(job))

    def _for_side(self, client: FramedRequest, backend: str) -> FramedRequest | None:
        """The copy ``backend`` gets; None for a lookup without a session that holds its
        token (an unknown token is never passed on to a shadow)."""
        request = client.request
        if isinstance(request, LogonRequest):
            return client
        session = session_of(self._sessions, request)
        return None if session is None else for_side(client, session, backend)

    def _compare(self, job: ShadowJob, answer: bytes) -> Comparison:
        operation = job.request.operation.value
        family = _family(job.request)
        return compare(operation, family, job.answer, answer, job.policy.rules, self._redact)

    def _store(self, job: ShadowJob, backend: str, comparison: Comparison, *, noise: bool) -> None:
        if self._writer is None:
            return
        subject = ""
        if self._pseudonymiser is not None and isinstance(job.request, LookupRequest):
            subject = self._pseudonymiser.pnr(job.request.pnr)
        sample = Sample(job.policy.route, job.backend, backend, comparison, subject, noise)
        self._writer.put(sample)

    def _emit(
        self,
        job: ShadowJob,
        backend: str,
        outcome: str,
        reason: str = "",
        fields: tuple[tuple[str, str], ...] = (),
        *,
        noise: bool = False,
    ) -> None:
        route, operation = job.policy.route, job.request.operation
        event = ShadowCompleted(route, operation, backend, outcome, reason, fields, noise)
        self._bus.emit(event)

    def _dropped(self, job: ShadowJob, reason: str) -> None:
        for shadow in _shadows(job):
            self._emit(job, shadow.backend, "dropped", reason)
        self._bus.emit(ShadowQueue(len(self._queue)))


def _shadows(job: ShadowJob) -> list[Shadow]:
    """The sampled shadows, less one that answered the client (a session fallback)."""
    return [s for s in job.shadows if s.backend != job.backend]


def _names(job: ShadowJob) -> set[str]:
    return {shadow.backend for shadow in job.shadows}


def _client_token(job: ShadowJob) -> str:
    """The token the client's answer carries: a copy's answer is made to carry it too."""
    if isinstance(job.request, LogonRequest):
        return answer_token(job.answer)
    return job.request.token


def _family(request: Request) -> Family:
    """The record family the answers are decoded in; a refused transaction code has none,
    and its header-only answers decode the same in either."""
    try:
        return Family(request.transaction)
    except ValueError:
        return Family.PRIV


def _outcome(comparison: Comparison) -> str:
    return "match" if comparison.matches else "differs"


def _fields(comparison: Comparison) -> tuple[tuple[str, str], ...]:
    return tuple((diff.key.record, diff.key.field) for diff in comparison.diffs)
