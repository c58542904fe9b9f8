"""The canary's evidence: answers counted per step, p99 from buckets, comparisons since a step."""

from __future__ import annotations

from gateway.canary.evidence import (
    LATENCY_BOUNDS,
    AnswerCounter,
    baseline,
    latency_bucket,
    p99,
    route_verdict,
    since_baseline,
)
from gateway.canary.model import Verdict
from gateway.comparison import FieldKey, Thresholds
from gateway.model import Operation
from gateway.observe.events import ReadFallback, RequestCompleted
from gateway.shadow.noise import FieldStats, OperationStats, Tally

THRESHOLDS = Thresholds(min_samples=10, max_excess_rate=0.01, noise_min_samples=10)
ADDRESS = FieldKey("lookup", "001", "STANDARDADR")
NAME = FieldKey("lookup", "001", "NAVN")


def _answer(
    route: str, backend: str, fejlnr: str = "00", seconds: float = 0.002
) -> RequestCompleted:
    return RequestCompleted("peer", Operation.LOOKUP, route, backend, fejlnr, seconds)


def _tally(compared: int, differing: int, address_differs: int) -> Tally:
    tally = Tally()
    tally.operations["lookup"] = OperationStats(compared, differing, 20, 0)
    tally.fields[ADDRESS] = FieldStats(compared, address_differs, 20, 0)
    tally.fields[NAME] = FieldStats(compared, 0, 20, 0)
    return tally


def test_answers_are_counted_per_route_backend_and_step_and_taken_once() -> None:
    """Only canary routes count; a failure FEJLNR (09) is a failure, a business one (05) not;
    a new step counts apart from the old; a take starts from zero."""
    counter = AnswerCounter()
    counter.track("lookups", 100.0)
    for event in (
        _answer("lookups", "mainframe"),
        _answer("lookups", "mainframe", "09"),
        _answer("lookups", "persons-v2", "05"),
        _answer("logons", "mainframe"),
    ):
        counter.on_event(event)
    counter.track("lookups", 200.0)
    counter.on_event(_answer("lookups", "persons-v2", seconds=0.5))
    rows = {(r.backend, r.since): (r.requests, r.failures) for r in counter.take()}
    assert rows == {
        ("mainframe", 100.0): (2, 1),
        ("persons-v2", 100.0): (1, 0),
        ("persons-v2", 200.0): (1, 0),
    }
    assert counter.take() == []


def test_a_read_the_primary_answered_after_the_candidate_failed_counts_for_both() -> None:
    """The fallback: the candidate's failure is its own (with the time it took to fail), the
    primary's answer the primary's; a read left without a fallback counts once, as its 09."""
    counter = AnswerCounter()
    counter.track("lookups", 100.0)
    for event in (
        ReadFallback("lookups", "persons-v2", 2.0, "asked"),
        _answer("lookups", "mainframe"),
        ReadFallback("lookups", "persons-v2", 2.0, "over_budget"),
        _answer("lookups", "persons-v2", "09", seconds=2.0),
    ):
        counter.on_event(event)
    rows = {r.backend: (r.requests, r.failures, r.latency) for r in counter.take()}
    slow = latency_bucket(2.0)
    assert rows == {
        "persons-v2": (2, 2, {slow: 2}),
        "mainframe": (1, 0, {latency_bucket(0.002): 1}),
    }


def test_counts_the_store_did_not_take_are_flushed_with_the_next() -> None:
    counter = AnswerCounter()
    counter.track("lookups", 100.0)
    counter.on_event(_answer("lookups", "mainframe"))
    counter.put_back(counter.take())
    counter.on_event(_answer("lookups", "mainframe", "09"))
    [row] = counter.take()
    assert (row.requests, row.failures, sum(row.latency.values())) == (2, 1, 2)


def test_p99_is_the_upper_bound_of_its_bucket() -> None:
    """99 fast answers and one slow: the p99 is the fast bucket's bound, within a fourth root
    of two of the true figure; two slow ones of a hundred make the slow bucket's."""
    fast, slow = latency_bucket(0.002), latency_bucket(0.300)
    assert LATENCY_BOUNDS[fast] >= 0.002 > LATENCY_BOUNDS[fast] / 2 ** (1 / 4)
    assert p99({fast: 99, slow: 1}) == LATENCY_BOUNDS[fast]
    assert p99({fast: 98, slow: 2}) == LATENCY_BOUNDS[slow]
    assert p99({}) is None
    assert p99({latency_bucket(10_000.0): 1}) == LATENCY_BOUNDS[-1]


def test_a_step_is_judged_on_the_comparisons_since_it_began() -> None:
    """Differences before the step's baseline do not count against it; noise is kept whole."""
    before = _tally(compared=50, differing=50, address_differs=50)
    now = _tally(compared=80, differing=50, address_differs=50)
    step = since_baseline(now, baseline(before))
    assert step.operations["lookup"] == OperationStats(30, 0, 20, 0)
    assert step.fields[ADDRESS] == FieldStats(30, 0, 20, 0)
    assert route_verdict(step, THRESHOLDS).verdict is Verdict.CLEAN
    assert route_verdict(now, THRESHOLDS).verdict is Verdict.DIFFERS


def test_counters_below_their_baseline_count_from_zero() -> None:
    """A process restarted (its own tallies start again) is not a negative count."""
    step = since_baseline(_tally(5, 1, 1), baseline(_tally(50, 10, 10)))
    assert step.operations["lookup"].compared == 5


def test_the_route_verdict_names_the_differing_fields() -> None:
    figures = route_verdict(_tally(compared=40, differing=20, address_differs=20), THRESHOLDS)
    assert (figures.verdict, figures.comparisons) == (Verdict.DIFFERS, 40)
    assert figures.differing_fields == ("STANDARDADR",)
    few = route_verdict(_tally(compared=5, differing=0, address_differs=0), THRESHOLDS)
    assert few.verdict is Verdict.INCONCLUSIVE
    assert route_verdict(Tally(), THRESHOLDS).verdict is Verdict.INCONCLUSIVE
