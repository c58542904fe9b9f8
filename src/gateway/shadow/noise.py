"""Noise statistics and verdicts: when is a difference real? Pure.

Some fields differ even between two instances of the *same* system (a
production date around midnight, a timestamp). So besides comparing the
candidate with the primary, a sample of requests is also sent to a second
primary instance, and each field gets two rates:

* its *difference rate*, candidate vs primary: ``differs / samples``;
* its *noise rate*, primary vs primary: ``noise_differs / noise_samples``.

A field is a **real difference** when its difference rate exceeds its noise
rate by more than ``max_excess_rate``. A noise rate measured on fewer than
``noise_min_samples`` comparisons is not trusted and counts as 0, so too little
noise data reports a difference rather than hides one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.comparison import FieldKey, Thresholds, Verdict
from gateway.shadow.compare import Comparison, iter_keys

#: Rates are floats: 13/100 - 11/100 is a hair above 0.02. An excess within this of the
#: threshold counts as at it, so that equal rates never report a difference.
_ROUNDING = 1e-9


@dataclass(slots=True)
class FieldStats:
    """Counts for one field key; a comparison counts once per key, however many records."""

    samples: int = 0
    differs: int = 0
    noise_samples: int = 0
    noise_differs: int = 0

    @property
    def rate(self) -> float:
        """Share of candidate comparisons in which the field differed."""
        return self.differs / self.samples if self.samples else 0.0

    @property
    def noise_rate(self) -> float:
        """Share of primary-vs-primary comparisons in which the field differed."""
        return self.noise_differs / self.noise_samples if self.noise_samples else 0.0


@dataclass(slots=True)
class OperationStats:
    """Requests compared per operation, candidate and noise comparisons counted apart."""

    compared: int = 0
    differing: int = 0
    noise_compared: int = 0
    noise_differing: int = 0


@dataclass(slots=True)
class Tally:
    """Accumulates comparisons of one candidate against its primary (e.g. one route's shadow).

    Not thread-safe: keep one per event loop, or guard it.
    """

    fields: dict[FieldKey, FieldStats] = field(default_factory=dict)
    operations: dict[str, OperationStats] = field(default_factory=dict)

    def record_comparison(self, comparison: Comparison) -> None:
        """Count a candidate-vs-primary comparison."""
        ops = self._operation(comparison)
        ops.compared += 1
        ops.differing += not comparison.matches
        for key, differs in iter_keys(comparison):
            stats = self._field(key)
            stats.samples += 1
            stats.differs += differs

    def record_noise(self, comparison: Comparison) -> None:
        """Count a comparison between two answers of the primary side."""
        ops = self._operation(comparison)
        ops.noise_compared += 1
        ops.noise_differing += not comparison.matches
        for key, differs in iter_keys(comparison):
            stats = self._field(key)
            stats.noise_samples += 1
            stats.noise_differs += differs

    def _operation(self, comparison: Comparison) -> OperationStats:
        operation = comparison.operation or _operation_of(comparison)
        return self.operations.setdefault(operation, OperationStats())

    def _field(self, key: FieldKey) -> FieldStats:
        stats = self.fields.get(key)
        if stats is None:
            stats = self.fields[key] = FieldStats()
        return stats


def _operation_of(comparison: Comparison) -> str:
    return comparison.keys[0].operation if comparison.keys else ""


def is_real_difference(stats: FieldStats, thresholds: Thresholds) -> bool:
    """True when the candidate differs more often than noise explains (see the module doc)."""
    if stats.differs == 0:
        return False
    trusted = stats.noise_samples >= thresholds.noise_min_samples
    noise = stats.noise_rate if trusted else 0.0
    return stats.rate - noise > thresholds.max_excess_rate + _ROUNDING


def field_verdict(stats: FieldStats, thresholds: Thresholds) -> Verdict:
    """A real difference differs; fewer than ``min_samples`` samples are inconclusive."""
    if is_real_difference(stats, thresholds):
        return Verdict.DIFFERS
    if stats.samples < thresholds.min_samples:
        return Verdict.INCONCLUSIVE
    return Verdict.CLEAN


def real_differences(tally: Tally, operation: str, thresholds: Thresholds) -> list[FieldKey]:
    """The operation's fields that really differ, in key order."""
    return sorted(
        (
            key
            for key, stats in tally.fields.items()
            if key.operation == operation and is_real_difference(stats, thresholds)
        ),
        key=str,
    )


def verdict(tally: Tally, operation: str, thresholds: Thresholds) -> Verdict:
    """Inconclusive below ``min_samples`` requests; differs when any field really differs."""
    stats = tally.operations.get(operation)
    if stats is None or stats.compared < thresholds.min_samples:
        return Verdict.INCONCLUSIVE
    if real_differences(tally, operation, thresholds):
        return Verdict.DIFFERS
    return Verdict.CLEAN
