"""Benchmark arithmetic: nearest-rank percentiles, open-loop latency, /proc parsing."""

from __future__ import annotations

import itertools
import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpr_bench.measure import (
    LatencySummary,
    ProcessUsage,
    machine_share,
    machine_times,
    open_loop_latency,
    parse_stat,
    parse_status_kib,
    percentile,
    process_tree,
    usage,
)


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..100 is 50, p99 is 99, p100 is 100: values that occurred, no interpolation."""
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )


def test_percentile_of_one_and_of_none() -> None:
    """One sample is every percentile; no samples is NaN, not an error."""
    assert percentile([7.0], 1) == percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_ordered_samples(values: list[float]) -> None:
    """Whatever the samples, p50 ≤ p90 ≤ p99 ≤ max and each is one of the samples."""
    summary = LatencySummary.of(values)
    assert summary.p50 <= summary.p90 <= summary.p99 <= summary.max
    assert {summary.p50, summary.p90, summary.p99, summary.max} <= set(values)
    assert summary.count == len(values)


def test_open_loop_latency_counts_from_when_the_request_was_due() -> None:
    """Request 10 at 100/s from t=5 is due at 5.1; answered at 5.3 it took 0.2 s, however late
    the generator sent it."""
    assert math.isclose(open_loop_latency(5.0, 100.0, 10, 5.3), 0.2)


def test_a_stall_shows_in_every_request_queued_behind_it() -> None:
    """A server stalled for 1 s at 100/s: requests due during the stall carry what is left of
    it, instead of one slow sample (what a closed loop would record)."""
    start, rate, stall_end = 0.0, 100.0, 1.0
    latencies = [open_loop_latency(start, rate, i, stall_end) for i in range(100)]
    assert math.isclose(latencies[0], 1.0)
    assert math.isclose(latencies[50], 0.5)
    assert math.isclose(latencies[99], 0.01)
    assert all(earlier > later for earlier, later in itertools.pairwise(latencies))


def test_parse_stat_survives_a_command_name_with_spaces_and_parentheses() -> None:
    """The fields are read after the last ')', so a process named 'a) (b' parses."""
    fields = ["S", "42", *["0"] * 9, "150", "50", *["0"] * 30]
    text = "1234 (a) (b) " + " ".join(fields)
    assert parse_stat(text) == (42, 200)


def test_parse_status_reads_kib_values() -> None:
    """VmHWM is read in KiB; an absent key is 0."""
    text = "Name:\tpython\nVmHWM:\t   12345 kB\nVmRSS:\t  100 kB\n"
    assert parse_status_kib(text, "VmHWM") == 12345
    assert parse_status_kib(text, "VmSwap") == 0


def test_usage_of_this_process_is_plausible() -> None:
    """This very process has used CPU and holds memory; its peak is at least its current RSS."""
    now = usage([os.getpid()])
    assert now.cpu_s > 0
    assert now.processes == 1
    assert now.rss_peak >= now.rss > 1024 * 1024


def test_usage_difference_is_cpu_used_between_samples() -> None:
    """Subtracting two samples gives the CPU in between and the later sample's memory."""
    before = ProcessUsage(1.0, 10, 20, 20, 2)
    after = ProcessUsage(3.5, 11, 30, 25, 2)
    assert after - before == ProcessUsage(2.5, 11, 30, 25, 2)


def test_process_tree_includes_the_root() -> None:
    """A process without children is its own tree."""
    assert os.getpid() in process_tree(os.getpid())


def test_machine_busy_and_stolen_times_only_grow() -> None:
    """Busy CPU seconds since boot are positive; neither they nor stolen ones go back."""
    first = machine_times()
    sum(range(200_000))  # a little work of our own
    then = machine_times()
    assert 0 < first.busy_s <= then.busy_s
    assert 0 <= first.stolen_s <= then.stolen_s


def test_a_share_of_the_machine_counts_every_core() -> None:
    """One CPU second over one second is one core's worth; no time elapsed is no share."""
    cores = os.cpu_count() or 1
    assert machine_share(1.0, 1.0) == pytest.approx(1 / cores)
    assert machine_share(2.0 * cores, 2.0) == pytest.approx(1.0)
    assert machine_share(1.0, 0.0) == 0.0
