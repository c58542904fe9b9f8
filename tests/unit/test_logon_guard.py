"""The failed-logon limit per (customer, source address): counted, bounded, slid over time."""

from __future__ import annotations

from gateway.config.schema import FailedLogons
from gateway.sessions.logon_guard import LogonGuard

LIMIT = FailedLogons(max=3, window=300.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_max_failures_within_the_window_block_that_customer_from_that_address_only() -> None:
    guard = LogonGuard(LIMIT, Clock())
    for _ in range(LIMIT.max - 1):
        guard.failed("12", "192.0.2.7")
    assert not guard.blocks("12", "192.0.2.7")
    guard.failed("12", "192.0.2.7")
    assert guard.blocks("12", "192.0.2.7")
    assert not guard.blocks("12", "192.0.2.8")
    assert not guard.blocks("13", "192.0.2.7")


def test_the_block_ends_when_the_oldest_failure_is_a_window_old() -> None:
    clock = Clock()
    guard = LogonGuard(LIMIT, clock)
    first = clock.now
    for _ in range(LIMIT.max):
        guard.failed("12", "192.0.2.7")
        clock.now += 10
    clock.now = first + LIMIT.window - 1
    assert guard.blocks("12", "192.0.2.7")
    clock.now = first + LIMIT.window
    assert not guard.blocks("12", "192.0.2.7")


def test_memory_is_bounded_least_recently_failed_first() -> None:
    guard = LogonGuard(LIMIT, Clock(), max_keys=2)
    for _ in range(LIMIT.max):
        guard.failed("12", "192.0.2.7")
    guard.failed("13", "192.0.2.7")
    guard.failed("14", "192.0.2.7")
    assert len(guard) == 2
    assert not guard.blocks("12", "192.0.2.7")


def test_a_lower_limit_on_reload_applies_to_the_counts_so_far() -> None:
    guard = LogonGuard(LIMIT, Clock())
    for _ in range(2):
        guard.failed("12", "192.0.2.7")
    guard.set_limit(FailedLogons(max=2, window=300.0))
    assert guard.blocks("12", "192.0.2.7")
