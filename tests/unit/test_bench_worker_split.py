"""cpr_bench.worker_split's arithmetic: ratios window by window, and which processes of a
``serve --workers`` tree are its workers."""

from __future__ import annotations

import pytest

from cpr_bench.worker_split import ratios, workers_of


def test_a_ratio_is_taken_window_by_window_then_summarised() -> None:
    costs = {"a": [200.0, 330.0, 240.0], "b": [100.0, 300.0, 200.0]}
    [ratio] = ratios(costs, [("a", "b")])
    assert ratio.name == "a ÷ b"
    # 2.0, 1.1, 1.2: the median of the windows' ratios, not the ratio of the medians (1.2).
    assert ratio.median == pytest.approx(1.2)
    assert ratio.low == pytest.approx(1.1)
    assert ratio.high == 2.0


def test_a_window_without_figures_for_the_divisor_is_left_out() -> None:
    [ratio] = ratios({"a": [200.0, 150.0], "b": [0.0, 100.0]}, [("a", "b")])
    assert (ratio.median, ratio.low, ratio.high) == (1.5, 1.5, 1.5)
    assert ratios({"a": [1.0], "b": [0.0]}, [("a", "b")]) == []


def test_the_workers_are_the_tree_below_its_root() -> None:
    assert workers_of([700, 912, 905]) == [905, 912]
    assert workers_of([700]) == []
