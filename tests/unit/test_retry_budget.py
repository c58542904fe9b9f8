"""The canary read fallback's budget: a share of the candidate's reads over a sliding window."""

from __future__ import annotations

from gateway.backends.retry_budget import WINDOW_S, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _spent(budget: RetryBudget, reads: int) -> int:
    """Fallbacks granted when every one of ``reads`` reads fails."""
    granted = 0
    for _ in range(reads):
        budget.read()
        granted += budget.spend()
    return granted


def test_a_failing_candidate_gets_a_tenth_of_its_reads_asked_again() -> None:
    assert _spent(RetryBudget(0.10, Clock()), 200) == 20


def test_zero_is_off_and_a_hundred_percent_asks_every_failed_read_again() -> None:
    assert _spent(RetryBudget(0.0, Clock()), 50) == 0
    assert _spent(RetryBudget(1.0, Clock()), 50) == 50


def test_the_window_slides_old_fallbacks_stop_counting() -> None:
    clock = Clock()
    budget = RetryBudget(0.10, clock)
    assert _spent(budget, 100) == 10
    assert not budget.spend()  # spent for now
    clock.now += WINDOW_S
    assert _spent(budget, 10) == 1  # only the new reads count
