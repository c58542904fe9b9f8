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

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.errors import ConfigError
from gateway.shadow.compare import Comparison, FieldKey, iter_keys

#: Rates are floats: 13/100 - 11/100 is a hair above 0.02. An excess within this of the
#: threshold counts as at it, so that equal rates never report a difference.
_ROUNDING = 1e-9


class Verdict(enum.StrEnum):
    """What the samples so far say about an operation or a field."""

    CLEAN = "clean"
    DIFFERS = "differs"
    INCONCLUSIVE = "inconclusive"


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


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When samples are enough and a difference is real; per route in routing.yaml."""

    #: Requests an operation needs before its verdict is more than inconclusive.
    min_samples: int = 30
    #: How far a field's difference rate may exceed its noise rate and still be noise.
    max_excess_rate: float = 0.01
    #: Primary-vs-primary comparisons a field needs before its noise rate is trusted.
    noise_min_samples: int = 10

    @classmethod
    def from_mapping(cls, raw: object, path: str) -> Thresholds:
        """Thresholds from a route's ``thresholds:`` mapping (None = defaults); ConfigError."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError([f"{path}: expected a mapping with keys {', '.join(_KEYS)}"])
        problems = [
            f"{path}.{key}: unknown key (expected {', '.join(_KEYS)})"
            for key in raw
            if key not in _KEYS
        ]
        default = cls()
        min_samples = _count(raw, "min_samples", default.min_samples, path, problems)
        excess = _rate(raw, "max_excess_rate", default.max_excess_rate, path, problems)
        noise_min = _count(raw, "noise_min_samples", default.noise_min_samples, path, problems)
        if problems:
            raise ConfigError(problems)
        return cls(min_samples, excess, noise_min)


_KEYS = ("min_samples", "max_excess_rate", "noise_min_samples")


def _count(raw: Mapping[object, object], key: str, default: int, path: str, out: list[str]) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        out.append(f"{path}.{key}: expected a whole number of at least 1, got {value!r}")
        return default
    return value


def _rate(
    raw: Mapping[object, object], key: str, default: float, path: str, out: list[str]
) -> float:
    """A share: ``0.01`` or ``"1%"``, from 0 (any excess is real) up to but excluding 1."""
    value = raw.get(key, default)
    rate: float | None = None
    if isinstance(value, str) and value.endswith("%"):
        try:
            rate = float(value[:-1]) / 100
        except ValueError:
            rate = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    if rate is None or not 0 <= rate < 1:
        out.append(f"{path}.{key}: expected a share such as 0.01 or '1%', got {value!r}")
        return default
    return rate


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
