"""``backends.<name>.breaker`` in routing.yaml: when a backend's calls stop being tried for a while.

The values are here, beside their parser, for every backend kind (each kind's parser reads
the key with :func:`parse_breaker`); the breaker itself is :mod:`gateway.backends.breaker`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import reader as r
from gateway.config.reader import Problems


@dataclass(frozen=True, slots=True)
class Breaker:
    """A backend's circuit breaker (docs/routing.md, "Circuit breakers").

    After ``failures`` calls in a row that failed (unreachable or timed out; an answer, even
    a refusal, is no failure) the backend is *open* for ``open_for`` seconds: its calls fail at
    once, as a failed call would. Then one trial call goes through: it closes the breaker, or
    opens it again.
    """

    failures: int = 5
    #: Short: clients must be answered again within seconds once the fault clears, and a
    #: trial call costs a dead backend no more than a call does.
    open_for: float = 2.0


_DEFAULT = Breaker()


def parse_breaker(reader: Problems, raw: object, path: str) -> Breaker:
    """``{failures: 5, open_for: 2s}``; either key may be left out (its default)."""
    s = reader.section(raw, path, ("failures", "open_for"))
    breaker = Breaker(
        s.get("failures", r.positive_int, _DEFAULT.failures),
        s.get("open_for", r.positive_duration, _DEFAULT.open_for),
    )
    s.done()
    return breaker
