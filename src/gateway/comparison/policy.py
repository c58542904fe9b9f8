"""How one route is shadowed: its copies, and how their answers are compared and judged.

routing.yaml's ``shadow:`` and ``noise:`` entries are read into :class:`Shadow` and
:class:`Noise` (gateway.config); the router samples them per request; the shadow
runner works from a route's :class:`ShadowPolicy`, built once per route table. Sample
shares are buckets out of 10,000 (``gateway.config.schema.BUCKETS``), like a split's.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.comparison.rules import Rules
from gateway.comparison.verdicts import Thresholds


@dataclass(frozen=True, slots=True)
class Shadow:
    """A backend that gets a copy of a sampled share of a route's requests, off the answer path."""

    backend: str
    #: Requests copied, in buckets out of 10,000 (sticky by PNR, like a split).
    sample: int
    #: Seconds the shadow backend gets; its lateness never delays the client.
    deadline: float
    #: Copy subscribe and unsubscribe too (both sides then change state); never change_password.
    dual_write: bool = False


@dataclass(frozen=True, slots=True)
class Noise:
    """A second instance of the primary side that gets a share of the shadowed lookups.

    Fields that differ between two answers of the *same* side are noise, not drift
    (see :mod:`gateway.shadow.noise`).
    """

    backend: str
    #: Shadowed lookups also sent here, in buckets out of 10,000.
    sample: int


@dataclass(frozen=True, slots=True)
class ShadowPolicy:
    """What the shadow runner needs of one shadowed route, and nothing of its config."""

    #: The route's name (a metric label).
    route: str
    #: The established side: noise copies are made only of requests it answered.
    primary: str
    #: Seconds a noise copy gets (the route's own deadline).
    deadline: float
    #: Every shadow of the route; a noise comparison counts for each.
    shadows: tuple[Shadow, ...]
    #: What the comparison ignores and normalises.
    rules: Rules
    #: When a shadow's differences are enough to call, and real.
    thresholds: Thresholds
