"""What the admin API and the dashboard may ask of the canary controller, and no more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.canary.model import CanaryState, Evidence, GateResult, Transition


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """A canary route as an operator sees it."""

    route: str
    primary: str
    candidate: str
    steps: tuple[float, ...]
    state: CanaryState
    #: Percent of the route's requests per backend now (primary, candidate).
    weights: dict[str, float]
    #: The last evaluation's gates (empty before the first).
    gates: tuple[GateResult, ...]
    #: When the controller evaluates next (seconds since the epoch); None when paused/completed.
    next_evaluation: float | None
    #: The evidence behind ``gates`` (per side: requests, failure rate, p99), for the
    #: dashboard's plots; None before the first evaluation.
    evidence: Evidence | None = None


class CanaryControl(Protocol):
    """Reading and steering every canary route; each change is recorded with ``who``.

    Unknown routes raise KeyError; a change that cannot apply (promote past the last
    step, resume a running route) raises ValueError with the reason.
    """

    def routes(self) -> list[RouteStatus]: ...

    def history(self, route: str, limit: int = 100) -> list[Transition]: ...

    async def pause(self, route: str, who: str, reason: str = "") -> RouteStatus: ...

    async def resume(self, route: str, who: str) -> RouteStatus: ...

    async def promote(self, route: str, who: str) -> RouteStatus: ...

    async def rollback(self, route: str, who: str, reason: str = "") -> RouteStatus: ...
