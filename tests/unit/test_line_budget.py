"""Rejections are logged within a budget of lines per reason per second, never all of a flood."""

from __future__ import annotations

import io
import json

import structlog

from gateway.observe.events import IDLE, PER_ADDRESS, RequestRejected
from gateway.observe.line_budget import LineBudget
from gateway.observe.logs import configure_logging, log_event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_lines_of_a_second_are_written_and_the_next_one_says_how_many_were_not() -> None:
    clock = Clock()
    budget = LineBudget(per_second=3, clock=clock)
    taken = [budget.take("per_address") for _ in range(10)]
    assert taken == [0, 0, 0, None, None, None, None, None, None, None]
    clock.now += 1.0
    assert budget.take("per_address") == 7
    assert budget.take("per_address") == 0


def test_each_kind_has_a_budget_of_its_own() -> None:
    budget = LineBudget(per_second=1, clock=Clock())
    assert budget.take("per_address") == 0
    assert budget.take("per_address") is None
    assert budget.take("idle") == 0


def test_a_flood_of_rejections_writes_a_few_lines_and_a_quiet_reason_still_gets_its_line() -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    try:
        for _ in range(1000):
            log_event(RequestRejected("127.0.0.1:4000", PER_ADDRESS, 0))
        log_event(RequestRejected("127.0.0.2:4000", IDLE, 0))
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    reasons = [line["reason"] for line in lines if line["event"] == "rejected"]
    # Within one second: at most the budget of per_address lines (a second boundary in the
    # middle of the loop allows one more budget), and the idle one.
    assert 1 <= reasons.count("per_address") <= 20
    assert reasons.count("idle") == 1


def test_refusals_reported_together_say_how_many_connections_they_stand_for() -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    try:
        log_event(RequestRejected("127.0.0.3", IDLE, 0, count=40))
        log_event(RequestRejected("127.0.0.4:4000", IDLE, 0))
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    counts = [(line["peer"], line.get("count")) for line in lines if line["event"] == "rejected"]
    assert counts == [("127.0.0.3", 40), ("127.0.0.4:4000", None)]
