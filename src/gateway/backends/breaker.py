"""A circuit breaker around every backend: a dead side fails at once instead of at its deadline.

:class:`CircuitBreaker` is the state (pure; the clock is an argument): *closed* counts failed
calls in a row; ``failures`` of them open it; *open* lets no call through for ``open_for``
seconds; then the next call is the one *half-open* trial, whose outcome closes it or opens it
again (the other calls meanwhile still fail at once). Only a failure of the side counts: it
could not be reached or did not answer in time (:class:`BackendUnavailable`,
:class:`BackendTimeout`). Any answer, a refusal like 05 or a malformed one, is the side
speaking, and a cancelled call says nothing.

:class:`BreakerBackend` puts one in front of an adapter (:func:`gateway.backends.build_backend`
does it for every backend), so the client's calls, the logon's repeats and the shadow copies
all see it: a call refused by an open breaker raises :class:`BackendOpen` (the client gets
the route's usual 09, or the canary read's fallback; a shadow copy is not sent). Each change
of state is an event (:class:`gateway.observe.events.BreakerChanged`): counted, and logged
once per change, never per refused call.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.codec import Request
from gateway.config.breaker import Breaker
from gateway.errors import BackendOpen, BackendProtocolError, BackendTimeout, BackendUnavailable
from gateway.observe.events import BreakerChanged, EventBus

if TYPE_CHECKING:  # base builds breakers around what it builds: imported for typing only
    from gateway.backends.base import Backend

#: How a :class:`BreakerChanged` of a trial that failed begins (logged quieter than a first open).
TRIAL_FAILED = "trial call failed"
#: The failures that count: the side is not there (the others are answers).
_COUNTED = (BackendUnavailable, BackendTimeout)


class State(enum.StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """One backend's breaker state; the caller reports each admitted call's outcome."""

    def __init__(self, settings: Breaker, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self.state = State.CLOSED
        #: Failed calls in a row while closed.
        self.failed_in_a_row = 0
        self._open_until = 0.0
        self._trial_running = False

    def admit(self) -> bool | None:
        """Whether a call may go: True (a normal call), None (it is the half-open trial, whose
        outcome decides), False (refused: the breaker is open)."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and self._clock() >= self._open_until:
            self.state, self._trial_running = State.HALF_OPEN, True
            return None
        if self.state is State.HALF_OPEN and not self._trial_running:
            self._trial_running = True  # the last trial was cancelled: this call is the next
            return None
        return False

    def succeeded(self, trial: bool) -> None:
        """A call admitted as ``trial`` (or not) was answered."""
        if trial:
            self._close()
        elif self.state is State.CLOSED:
            self.failed_in_a_row = 0

    def failed(self, trial: bool) -> None:
        """A call admitted as ``trial`` (or not) failed: the side was not there."""
        if trial:
            self._open()
        elif self.state is State.CLOSED:
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= self._settings.failures:
                self._open()

    def abandoned(self, trial: bool) -> None:
        """A call admitted as ``trial`` (or not) ended without an outcome (cancelled): the next
        call is the trial instead."""
        if trial:
            self._trial_running = False

    def _open(self) -> None:
        self.state, self._trial_running = State.OPEN, False
        self._open_until = self._clock() + self._settings.open_for

    def _close(self) -> None:
        self.state, self._trial_running, self.failed_in_a_row = State.CLOSED, False, 0


class BreakerBackend:
    """A backend behind its circuit breaker; the same :class:`~gateway.backends.base.Backend`."""

    def __init__(
        self,
        backend: Backend,
        settings: Breaker,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.breaker = CircuitBreaker(settings, clock)
        self._bus = bus

    @property
    def name(self) -> str:
        """The backend's name from routing.yaml."""
        return self.backend.name

    async def call(
        self,
        request: Request,
        raw: bytes,
        *,
        deadline: float,
        origin: str | None = None,
        repeat: bool = False,
    ) -> bytes:
        """The backend's answer, or BackendOpen at once while the breaker is open."""
        breaker = self.breaker
        if breaker.state is not State.CLOSED:
            return await self._guarded(request, raw, deadline, origin, repeat)
        try:  # closed, nearly always: the fewest steps on every request's way
            answer = await self.backend.call(
                request, raw, deadline=deadline, origin=origin, repeat=repeat
            )
        except _COUNTED as exc:
            breaker.failed(trial=False)
            if breaker.state is not State.CLOSED:
                self._changed(str(exc))
            raise
        except BackendProtocolError:
            breaker.succeeded(trial=False)
            raise
        if breaker.failed_in_a_row:
            breaker.succeeded(trial=False)
        return answer

    async def _guarded(
        self, request: Request, raw: bytes, deadline: float, origin: str | None, repeat: bool
    ) -> bytes:
        """A call while the breaker is not closed: refused, or the trial, or (closed meanwhile)
        a normal call."""
        breaker = self.breaker
        admitted = breaker.admit()
        if admitted is False:
            raise BackendOpen(f"{self.name}: circuit breaker open")
        trial = admitted is None
        if trial:
            self._changed("trial call")
        before = breaker.state
        try:
            answer = await self.backend.call(
                request, raw, deadline=deadline, origin=origin, repeat=repeat
            )
        except _COUNTED as exc:
            breaker.failed(trial)
            if breaker.state is not before:
                self._changed(f"{TRIAL_FAILED}: {exc}" if trial else str(exc))
            raise
        except BackendProtocolError:  # the side is there, answering badly: not this breaker's
            self._answered(trial, before)
            raise
        except BaseException:  # cancelled: no verdict on the side
            breaker.abandoned(trial)
            raise
        self._answered(trial, before)
        return answer

    async def aclose(self) -> None:
        """Close the backend behind it."""
        await self.backend.aclose()

    def _answered(self, trial: bool, before: State) -> None:
        self.breaker.succeeded(trial)
        if self.breaker.state is not before:
            self._changed("trial call answered")

    def _changed(self, detail: str) -> None:
        if self._bus is not None:
            state = self.breaker.state.value
            self._bus.emit(BreakerChanged(self.name, state, self.breaker.failed_in_a_row, detail))
