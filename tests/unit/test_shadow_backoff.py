"""The backoff between the shadow writer's attempts to open a mismatch store it cannot reach."""

from __future__ import annotations

from gateway.shadow.writer import RETRY_FIRST_S, RETRY_MOST_S, Backoff


def test_waits_double_up_to_the_most_each_cut_by_at_most_half() -> None:
    """1 s, 2, 4 … up to 30 s and there it stays; each wait somewhere in its upper half."""
    backoff = Backoff()
    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert (ceilings[0], ceilings[-1]) == (RETRY_FIRST_S, RETRY_MOST_S)
    for ceiling in ceilings:
        assert ceiling / 2 <= backoff.next() <= ceiling


def test_a_reset_starts_again_from_the_first_wait() -> None:
    """After a success the next outage's first attempt comes as soon as the first one did."""
    backoff = Backoff(first=0.25, most=4.0)
    for _ in range(6):
        backoff.next()
    backoff.reset()
    assert 0.125 <= backoff.next() <= 0.25
