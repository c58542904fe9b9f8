"""The router: a pure function from a request to a :class:`Decision`, compiled from config.

Ordered routes, first match wins; the config loader guarantees a final catch-all,
so every request gets a decision. No I/O here (an AST test keeps it that way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.codec import Request, customer_number
from gateway.config.schema import Route


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes and how long the backend gets."""

    route: str
    backend: str
    #: Seconds for the backend call (connect, write and read together).
    deadline: float


class RouteTable:
    """Routes compiled for lookup; cheap per call and safe to share between tasks."""

    def __init__(self, routes: Sequence[Route]) -> None:
        if not routes or not routes[-1].match.is_catch_all:
            raise ValueError("a route table needs a final catch-all route")
        self._routes = tuple((r.match, Decision(r.name, r.backend, r.deadline)) for r in routes)

    def route(self, request: Request) -> Decision:
        """The decision of the first route that takes ``request``."""
        operation = request.operation
        customer = customer_number(request.customer)
        for match, decision in self._routes:
            if match.admits(operation, request.transaction, customer):
                return decision
        raise AssertionError("unreachable: the last route is a catch-all")
