"""How a route's shadow comparisons are judged: the thresholds, and the verdicts they give. Pure.

The judging itself (:func:`gateway.shadow.noise.verdict`) is the shadow's; the
values live here because routing.yaml sets the thresholds per route and the
metrics export the verdicts, and neither should import the shadow machinery.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import ConfigError


class Verdict(enum.StrEnum):
    """What the samples so far say about an operation or a field."""

    CLEAN = "clean"
    DIFFERS = "differs"
    INCONCLUSIVE = "inconclusive"


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
