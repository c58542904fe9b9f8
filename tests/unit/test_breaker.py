"""The circuit breaker's states: failures in a row open it, time and one trial close it."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.breaker import BreakerBackend, CircuitBreaker, State
from gateway.codec import LookupRequest
from gateway.config.breaker import Breaker
from gateway.errors import (
    BackendOpen,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
)
from gateway.observe.events import BreakerChanged, Event, EventBus

SETTINGS = Breaker(failures=3, open_for=2.0)
REQUEST = LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", "0101601234")  # synthetic


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Side:
    """A backend whose next calls fail or answer as the test says (the injected fault)."""

    name = "persons-v2"

    def __init__(self) -> None:
        self.calls = 0
        self.fault: Exception | None = None
        self.hold: asyncio.Event | None = None

    async def call(self, request: object, raw: bytes, **_: object) -> bytes:
        self.calls += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.fault is not None:
            raise self.fault
        return b"answer"

    async def aclose(self) -> None:
        pass


def _state(breaker: CircuitBreaker) -> State:
    """The state now (a function, so that the type checker does not fix it between calls)."""
    return breaker.state


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(SETTINGS.failures):
        assert breaker.admit() is True
        breaker.failed(trial=False)


def test_failures_in_a_row_open_it_and_an_answer_between_them_starts_the_count_again() -> None:
    breaker = CircuitBreaker(SETTINGS, Clock())
    for _ in range(SETTINGS.failures - 1):
        breaker.failed(trial=False)
    breaker.succeeded(trial=False)
    for _ in range(SETTINGS.failures - 1):
        breaker.failed(trial=False)
    assert _state(breaker) is State.CLOSED
    breaker.failed(trial=False)
    assert _state(breaker) is State.OPEN


def test_open_refuses_until_open_for_has_passed_then_admits_exactly_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock)
    _open(breaker)
    assert breaker.admit() is False
    clock.now += SETTINGS.open_for - 0.001
    assert breaker.admit() is False
    clock.now += 0.001
    assert breaker.admit() is None  # the trial
    assert _state(breaker) is State.HALF_OPEN
    assert breaker.admit() is False  # others still fail at once while it runs


def test_a_trial_that_is_answered_closes_it_and_one_that_fails_opens_it_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock)
    _open(breaker)
    clock.now += SETTINGS.open_for
    assert breaker.admit() is None
    breaker.failed(trial=True)
    assert _state(breaker) is State.OPEN
    assert breaker.admit() is False
    clock.now += SETTINGS.open_for
    assert breaker.admit() is None
    breaker.succeeded(trial=True)
    assert _state(breaker) is State.CLOSED
    assert breaker.admit() is True


def test_a_cancelled_trial_lets_the_next_call_be_the_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock)
    _open(breaker)
    clock.now += SETTINGS.open_for
    assert breaker.admit() is None
    breaker.abandoned(trial=True)
    assert breaker.admit() is None


def test_late_outcomes_of_calls_made_before_it_opened_change_nothing() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock)
    _open(breaker)
    breaker.succeeded(trial=False)  # a call admitted while closed, answered late
    assert _state(breaker) is State.OPEN
    clock.now += SETTINGS.open_for
    assert breaker.admit() is None
    breaker.succeeded(trial=False)
    assert _state(breaker) is State.HALF_OPEN  # only the trial decides


@pytest.mark.parametrize(
    ("fault", "counts"),
    [
        (BackendUnavailable("persons-v2: unavailable"), True),
        (BackendTimeout("persons-v2: deadline exceeded"), True),
        (BackendProtocolError("persons-v2: status INTERNAL"), False),
    ],
    ids=["unavailable", "timeout", "protocol"],
)
async def test_only_an_absent_side_counts_as_a_failure(fault: Exception, counts: bool) -> None:
    side = Side()
    backend = BreakerBackend(side, SETTINGS, clock=Clock())
    side.fault = fault
    for _ in range(SETTINGS.failures):
        with pytest.raises(type(fault)):
            await backend.call(REQUEST, b"", deadline=1.0)
    assert (backend.breaker.state is State.OPEN) is counts


async def test_an_open_backend_is_not_called_and_every_change_is_one_event() -> None:
    clock, side, bus = Clock(), Side(), EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    backend = BreakerBackend(side, SETTINGS, bus, clock)
    side.fault = BackendUnavailable("persons-v2: connection refused")
    for _ in range(SETTINGS.failures):
        with pytest.raises(BackendUnavailable):
            await backend.call(REQUEST, b"", deadline=1.0)
    for _ in range(10):
        with pytest.raises(BackendOpen):
            await backend.call(REQUEST, b"", deadline=1.0)
    assert side.calls == SETTINGS.failures
    clock.now += SETTINGS.open_for
    side.fault = None
    assert await backend.call(REQUEST, b"", deadline=1.0) == b"answer"
    states = [e.state for e in seen if isinstance(e, BreakerChanged)]
    assert states == ["open", "half_open", "closed"]


async def test_a_cancelled_trial_call_does_not_leave_it_half_open_for_ever() -> None:
    clock, side = Clock(), Side()
    backend = BreakerBackend(side, SETTINGS, clock=clock)
    side.fault = BackendTimeout("persons-v2: no answer")
    for _ in range(SETTINGS.failures):
        with pytest.raises(BackendTimeout):
            await backend.call(REQUEST, b"", deadline=1.0)
    clock.now += SETTINGS.open_for
    side.fault, side.hold = None, asyncio.Event()
    trial = asyncio.ensure_future(backend.call(REQUEST, b"", deadline=1.0))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    side.hold = None
    assert await backend.call(REQUEST, b"", deadline=1.0) == b"answer"
    assert backend.breaker.state is State.CLOSED
