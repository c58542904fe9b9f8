"""Load generator pieces without the network: splitting work, judging answers, merging."""

from __future__ import annotations

import collections

from hypothesis import given
from hypothesis import strategies as st

from cpr_bench.loadgen import JobResult, share
from cpr_bench.wire import answer_problem
from gateway.codec import LookupAnswer, LookupRequest
from gateway.model import Family, FejlNr

REQUEST = LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", "0101601234")  # synthetic


@given(st.integers(0, 10_000), st.integers(1, 64))
def test_shares_add_up_and_differ_by_at_most_one(total: int, of: int) -> None:
    """Splitting a workload over processes loses nothing and balances it."""
    parts = [share(total, index, of) for index in range(of)]
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1


def test_a_good_answer_has_no_problem() -> None:
    """FEJLNR 00 and a length field equal to the answer's size is good."""
    answer = LookupAnswer.for_request(REQUEST, FejlNr.OK).encode(Family.PRIV)
    assert answer_problem(answer) is None


def test_an_error_answer_is_named_by_its_fejlnr() -> None:
    """A well-formed refusal is an error of its own kind, e.g. 'FEJLNR 09'."""
    answer = LookupAnswer.for_request(REQUEST, FejlNr.NO_CONNECTION).encode(Family.PRIV)
    assert answer_problem(answer) == "FEJLNR 09"


def test_empty_short_and_mislabelled_answers_are_errors() -> None:
    """Nothing, a truncated header, and a header whose length field lies are all errors."""
    good = LookupAnswer.for_request(REQUEST, FejlNr.OK).encode(Family.PRIV)
    assert answer_problem(b"") == "no answer"
    assert answer_problem(good[:20]) == "short answer (20 bytes)"
    assert answer_problem(good + b" ") == "length field does not match the answer"


def test_merged_results_add_counts_and_keep_every_sample() -> None:
    """Merging two processes' results keeps all latencies, adds counters, keeps the last answer."""
    a = JobResult([0.1], [0.01], [0.0], collections.Counter({"timeout": 1}), 1, 3, 0, 0.5, 10.0)
    b = JobResult([0.2, 0.3], [0.02], [], collections.Counter({"timeout": 2}), 2, 4, 0, 0.25, 9.0)
    merged = a.merge(b)
    assert merged.latencies == [0.1, 0.2, 0.3]
    assert merged.errors == {"timeout": 3}
    assert (merged.ok, merged.exchanges, merged.cpu_s, merged.last_done) == (3, 7, 0.75, 10.0)


def test_record_counts_errors_apart_from_latencies() -> None:
    """A failed request is counted by kind and never enters the latency samples."""
    result = JobResult()
    result.record("timeout", 5.0, 0.0, 12.0)
    result.record(None, 0.004, 0.001, 12.5)
    assert result.errors == {"timeout": 1}
    assert (result.ok, result.latencies, result.last_done) == (1, [0.004], 12.5)
