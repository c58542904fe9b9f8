"""A request's own events (its RequestCompleted, a lookup's LookupAnswered) are delivered once
the step that made its answer is done, that is after the answer is written: the client does not
wait for its log line, metrics or audit record. Through a real legacy backend on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gateway_harness import LOOKUP, LOOKUP_ANSWER, backend_server, canned

from gateway import dispatch
from gateway.backends import build_backend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config.schema import Match, Route
from gateway.dispatch import Dispatcher
from gateway.observe.events import Event, EventBus, LookupAnswered, RequestCompleted
from gateway.routing import RouteTable


async def test_a_requests_events_come_after_its_answer_in_order() -> None:
    received: list[bytes] = []
    bus, seen = EventBus(), list[Event]()
    bus.subscribe(seen.append, RequestCompleted, LookupAnswered)
    async with backend_server(canned(received)) as port:
        backend = build_backend(LegacyBackendConfig("mainframe", "127.0.0.1", port, None))
        table = RouteTable([Route("all", Match(), "mainframe", 5.0)])
        dispatcher = Dispatcher(table, {"mainframe": backend}, bus)
        try:
            answer = await dispatcher.handle(LOOKUP, LOOKUP.encode(), peer="127.0.0.1:9")
            assert answer == LOOKUP_ANSWER
            assert seen == []  # the caller writes the answer in this step, before them
            await asyncio.sleep(0)
        finally:
            await dispatcher.aclose()
    completed, answered = seen
    assert isinstance(completed, RequestCompleted) and isinstance(answered, LookupAnswered)
    assert (completed.fejlnr, completed.backend, answered.pnr) == ("00", "mainframe", LOOKUP.pnr)
    assert received == [LOOKUP.encode()]


async def test_a_lookups_audit_event_is_made_only_when_something_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an audit log nothing takes LookupAnswered, and the record of who asked about
    whom is not even made; with a subscriber for it, it is made and delivered."""
    made: list[LookupAnswered] = []
    real = dispatch._answered

    def counted(*args: Any) -> LookupAnswered:
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(dispatch, "_answered", counted)
    async with backend_server(canned([])) as port:
        backend = build_backend(LegacyBackendConfig("mainframe", "127.0.0.1", port, None))
        table = RouteTable([Route("all", Match(), "mainframe", 5.0)])
        for audited in (False, True):
            bus, seen = EventBus(), list[Event]()
            bus.subscribe(seen.append, RequestCompleted)
            if audited:
                bus.subscribe(seen.append, LookupAnswered)
            dispatcher = Dispatcher(table, {"mainframe": backend}, bus)
            assert await dispatcher.handle(LOOKUP, LOOKUP.encode(), peer="p") == LOOKUP_ANSWER
            await asyncio.sleep(0)
            kinds = [type(e) for e in seen]
            assert kinds == ([RequestCompleted, LookupAnswered] if audited else [RequestCompleted])
            assert len(made) == (1 if audited else 0)
        await dispatcher.aclose()
