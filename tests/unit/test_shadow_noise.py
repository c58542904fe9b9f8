"""Noise statistics and verdicts: a difference is real only when noise does not explain it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.comparison import FieldKey, Thresholds, Verdict
from gateway.errors import ConfigError
from gateway.shadow.compare import Comparison, FieldDiff
from gateway.shadow.noise import (
    FieldStats,
    Tally,
    field_verdict,
    is_real_difference,
    real_differences,
    verdict,
)

ADDRESS = FieldKey("lookup", "001", "STANDARDADR")
DAY = FieldKey("lookup", "000", "PRODDTO")
STATUS = FieldKey("lookup", "001", "STATUS")
KEYS = (ADDRESS, DAY, STATUS)
DEFAULT = Thresholds()


def _comparison(*differing: FieldKey, keys: tuple[FieldKey, ...] = KEYS) -> Comparison:
    diffs = tuple(FieldDiff(key, "a", "b") for key in differing)
    return Comparison(keys, diffs, "lookup")


def _run(tally: Tally, total: int, every: int, key: FieldKey, noise: bool = False) -> None:
    """Record ``total`` comparisons in which ``key`` differs in every ``every``-th one."""
    record = tally.record_noise if noise else tally.record_comparison
    for i in range(total):
        record(_comparison(key) if i % every == 0 else _comparison())


def test_tally_counts_samples_and_differences_per_key_and_operation() -> None:
    """Each comparison adds a sample to every compared key and a difference to differing ones."""
    tally = Tally()
    tally.record_comparison(_comparison(ADDRESS))
    tally.record_comparison(_comparison())
    tally.record_comparison(_comparison(ADDRESS, DAY, keys=(ADDRESS, DAY)))
    tally.record_noise(_comparison(DAY))
    assert tally.fields[ADDRESS] == FieldStats(samples=3, differs=2, noise_samples=1)
    assert tally.fields[DAY] == FieldStats(samples=3, differs=1, noise_samples=1, noise_differs=1)
    assert tally.fields[STATUS] == FieldStats(samples=2, noise_samples=1)
    ops = tally.operations["lookup"]
    assert (ops.compared, ops.differing, ops.noise_compared, ops.noise_differing) == (3, 2, 1, 1)


def test_verdict_is_inconclusive_below_min_samples() -> None:
    """29 requests are not enough for the default 30, even when every one differs."""
    tally = Tally()
    _run(tally, 29, 1, ADDRESS)
    assert verdict(tally, "lookup", DEFAULT) is Verdict.INCONCLUSIVE
    assert verdict(Tally(), "lookup", DEFAULT) is Verdict.INCONCLUSIVE
    tally.record_comparison(_comparison(ADDRESS))
    assert verdict(tally, "lookup", DEFAULT) is Verdict.DIFFERS


def test_a_field_differing_as_often_in_noise_is_not_reported() -> None:
    """PRODDTO differs 10% against the candidate and 10% between primaries: clean."""
    tally = Tally()
    _run(tally, 100, 10, DAY)
    _run(tally, 50, 10, DAY, noise=True)
    assert real_differences(tally, "lookup", DEFAULT) == []
    assert verdict(tally, "lookup", DEFAULT) is Verdict.CLEAN


def test_a_field_never_differing_in_noise_but_20_percent_vs_candidate_is_reported() -> None:
    """STANDARDADR differs in 1 of 5 candidate answers and never in noise: differs."""
    tally = Tally()
    _run(tally, 100, 5, ADDRESS)
    _run(tally, 50, 10, DAY, noise=True)
    assert tally.fields[ADDRESS].rate == pytest.approx(0.2)
    assert real_differences(tally, "lookup", DEFAULT) == [ADDRESS]
    assert verdict(tally, "lookup", DEFAULT) is Verdict.DIFFERS


def test_excess_at_the_threshold_is_noise_and_above_it_is_real() -> None:
    """A rate exactly max_excess_rate above noise is tolerated; one more difference is not."""
    limits = Thresholds(max_excess_rate=0.02)
    assert not is_real_difference(FieldStats(100, 2, 100, 0), limits)
    assert is_real_difference(FieldStats(100, 3, 100, 0), limits)
    assert not is_real_difference(FieldStats(100, 12, 100, 10), limits)
    assert is_real_difference(FieldStats(100, 13, 100, 10), limits)
    # In floats 0.13 - 0.11 is a hair above 0.02; it still counts as at the threshold.
    assert not is_real_difference(FieldStats(100, 13, 100, 11), limits)


def test_too_few_noise_samples_are_not_trusted() -> None:
    """A noise rate from fewer than noise_min_samples comparisons counts as 0."""
    limits = Thresholds(noise_min_samples=10)
    assert is_real_difference(FieldStats(100, 50, 9, 9), limits)
    assert not is_real_difference(FieldStats(100, 50, 10, 5), limits)


def test_field_verdicts() -> None:
    """A real difference differs; a quiet field with few samples is inconclusive, else clean."""
    assert field_verdict(FieldStats(5, 5), DEFAULT) is Verdict.DIFFERS
    assert field_verdict(FieldStats(5, 0), DEFAULT) is Verdict.INCONCLUSIVE
    assert field_verdict(FieldStats(30, 0), DEFAULT) is Verdict.CLEAN


def test_verdicts_are_per_operation() -> None:
    """A difference in logon answers does not make lookups differ."""
    tally = Tally()
    logon = FieldKey("logon", "hdr", "FEJLNR")
    for _ in range(40):
        tally.record_comparison(_comparison())
        tally.record_comparison(Comparison((logon,), (FieldDiff(logon, "00", "01"),), "logon"))
    assert verdict(tally, "lookup", DEFAULT) is Verdict.CLEAN
    assert verdict(tally, "logon", DEFAULT) is Verdict.DIFFERS
    assert real_differences(tally, "logon", DEFAULT) == [logon]


@given(
    samples=st.integers(1, 2000),
    share=st.floats(0, 1),
    scale=st.integers(1, 20),
    limits=st.builds(Thresholds, st.integers(1, 100), st.floats(0, 0.5), st.integers(1, 2000)),
)
def test_noise_as_frequent_as_the_difference_is_never_real(
    samples: int, share: float, scale: int, limits: Thresholds
) -> None:
    """Whatever the counts: equal rates against candidate and in trusted noise never report."""
    differs = round(samples * share)
    noise_samples = max(samples * scale, limits.noise_min_samples)
    noise_differs = round(noise_samples * differs / samples)
    stats = FieldStats(samples, differs, noise_samples, noise_differs)
    if noise_differs * samples >= differs * noise_samples:  # rounding may only lower noise
        assert not is_real_difference(stats, limits)


@given(samples=st.integers(30, 3000), noise=st.integers(10, 3000))
def test_a_clean_noise_and_a_20_percent_difference_is_always_real(samples: int, noise: int) -> None:
    """With no noise at all, a field differing in a fifth of the answers is always reported."""
    stats = FieldStats(samples, samples // 5 + 1, noise, 0)
    assert is_real_difference(stats, DEFAULT)
    assert field_verdict(stats, DEFAULT) is Verdict.DIFFERS


def test_thresholds_from_mapping_reads_counts_and_shares() -> None:
    """Whole numbers and a share as number or percentage; None means the defaults."""
    read = Thresholds.from_mapping(
        {"min_samples": 50, "max_excess_rate": "2.5%", "noise_min_samples": 5}, "r"
    )
    assert read == Thresholds(50, 0.025, 5)
    assert Thresholds.from_mapping({"max_excess_rate": 0}, "r") == Thresholds(max_excess_rate=0.0)
    assert Thresholds.from_mapping(None, "r") == Thresholds()


def test_thresholds_from_mapping_names_every_problem_by_path() -> None:
    """Zero, booleans, rates of 1 or more and unknown keys are refused under their path."""
    with pytest.raises(ConfigError) as caught:
        Thresholds.from_mapping(
            {"min_samples": 0, "max_excess_rate": 1.5, "noise_min_samples": True, "x": 1},
            "routes[0].thresholds",
        )
    assert caught.value.problems == [
        "routes[0].thresholds.x: unknown key (expected min_samples, max_excess_rate, "
        "noise_min_samples)",
        "routes[0].thresholds.min_samples: expected a whole number of at least 1, got 0",
        "routes[0].thresholds.max_excess_rate: expected a share such as 0.01 or '1%', got 1.5",
        "routes[0].thresholds.noise_min_samples: expected a whole number of at least 1, got True",
    ]
    with pytest.raises(ConfigError, match=r"^routes\[0\]\.thresholds: expected a mapping"):
        Thresholds.from_mapping(30, "routes[0].thresholds")
