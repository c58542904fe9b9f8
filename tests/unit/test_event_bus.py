"""The event bus: each event reaches the subscribers of its type, in subscription order, and
a failing subscriber costs the others nothing. The log and metrics subscribers are
subscribed for exactly the types their code acts on (read from the code's own patterns),
so that routing by type can never leave an event unlogged or uncounted."""

from __future__ import annotations

import ast
import inspect
import typing

from gateway.model import Operation
from gateway.observe import events, logs, metrics
from gateway.observe.events import ConnectionClosed, ConnectionOpened, EventBus, RequestCompleted

OPENED = ConnectionOpened("127.0.0.1:1")
CLOSED = ConnectionClosed("127.0.0.1:1")
DONE = RequestCompleted("127.0.0.1:1", Operation.LOOKUP, "all", "mainframe", "00", 0.001)


def test_an_event_reaches_the_subscribers_of_its_type_in_order() -> None:
    bus = EventBus()
    seen: list[tuple[str, object]] = []
    bus.subscribe(lambda e: seen.append(("all", e)))
    bus.subscribe(lambda e: seen.append(("connections", e)), ConnectionOpened, ConnectionClosed)
    bus.subscribe(lambda e: seen.append(("requests", e)), RequestCompleted)
    for event in (OPENED, DONE, CLOSED, DONE):
        bus.emit(event)
    assert seen == [
        ("all", OPENED),
        ("connections", OPENED),
        ("all", DONE),
        ("requests", DONE),
        ("all", CLOSED),
        ("connections", CLOSED),
        ("all", DONE),
        ("requests", DONE),
    ]


def test_a_subscriber_added_later_gets_the_events_after_it() -> None:
    bus = EventBus()
    first: list[object] = []
    later: list[object] = []
    bus.subscribe(first.append, RequestCompleted)
    bus.emit(DONE)  # the route for RequestCompleted is built here
    bus.subscribe(later.append, RequestCompleted)
    bus.emit(DONE)
    assert (first, later) == ([DONE, DONE], [DONE])


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[object] = []

    def fails(event: object) -> None:
        raise RuntimeError("a bug in telemetry")

    bus.subscribe(fails, RequestCompleted)
    bus.subscribe(seen.append)
    bus.emit(DONE)
    assert seen == [DONE]


def _matched_event_types(module: object) -> set[str]:
    """The event types the module's ``match`` statements name in a class pattern."""
    names = {kind.__name__ for kind in typing.get_args(events.Event)}
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    return {
        node.cls.id
        for node in ast.walk(tree)
        if isinstance(node, ast.MatchClass)
        and isinstance(node.cls, ast.Name)
        and node.cls.id in names
    }


def test_the_log_subscriber_is_subscribed_to_every_type_it_logs() -> None:
    assert {kind.__name__ for kind in logs.LOGGED} == _matched_event_types(logs)


def test_the_metrics_subscriber_is_subscribed_to_every_type_it_counts() -> None:
    assert {kind.__name__ for kind in metrics.COUNTED} == _matched_event_types(metrics)


def test_the_bus_says_whether_anyone_takes_a_type() -> None:
    bus = EventBus()
    assert not bus.heard(RequestCompleted)
    bus.subscribe(lambda e: None, ConnectionOpened)
    assert bus.heard(ConnectionOpened) and not bus.heard(RequestCompleted)
    bus.subscribe(lambda e: None)  # every type
    assert bus.heard(RequestCompleted)
