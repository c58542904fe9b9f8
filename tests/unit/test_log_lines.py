"""Log lines reach their stream whole: one write per line, newline included.

Workers of one gateway (and a supervisor's other processes) share stderr. With an
unbuffered stderr (PYTHONUNBUFFERED=1, usual in containers) a line written as the
text and then its newline, two writes, can interleave with another process's line:
two JSON objects on one line and an empty line after them.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
import structlog

from gateway.model import Operation
from gateway.observe.events import RequestCompleted
from gateway.observe.logs import _request_fields, configure_logging, log_event


class Writes(io.StringIO):
    """A stream that remembers each write it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_log_line_is_one_write_with_its_newline() -> None:
    stream = Writes()
    configure_logging(json=True, stream=stream)
    try:
        log = structlog.get_logger("gateway")
        for n in range(3):
            log.info("request", n=n)
    finally:
        structlog.reset_defaults()
    assert len(stream.writes) == 3
    for n, write in enumerate(stream.writes):
        assert write.endswith("\n") and write.count("\n") == 1
        assert json.loads(write)["n"] == n


def test_an_answered_requests_line_is_what_structlog_renders_for_it() -> None:
    """The answered request's line is written without structlog's processors (it is the one
    line per request): the same keys in the same order, the same values and timestamp form
    as structlog's own rendering of the same fields, which a failed request's line keeps."""
    stream = Writes()
    configure_logging(json=True, stream=stream)
    answered = RequestCompleted("127.0.0.1:5", Operation.LOOKUP, "all", "mainframe", "00", 0.0025)
    try:
        log_event(answered)
        structlog.get_logger("gateway").info("request", **_request_fields(answered))
    finally:
        structlog.reset_defaults()
    direct, rendered = (json.loads(write) for write in stream.writes)
    assert list(direct) == list(rendered)
    assert {**direct, "timestamp": ""} == {**rendered, "timestamp": ""}
    assert direct["latency_ms"] == 2.5 and direct["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", direct["timestamp"])


@pytest.mark.parametrize(
    ("operation", "route", "peer", "duration_s"),
    [
        (Operation.LOOKUP, "all", "127.0.0.1:5", 0.0025),
        (Operation.SUBSCRIBE, 'a "quoted" \\ route', "[::1]:5000", 1.0),
        (Operation.UNSUBSCRIBE, "rute-æøå\n\t", "unknown", 12.3456789),
        (Operation.LOOKUP, "", "10.0.0.1:1", 0.0),
    ],
)
def test_an_answered_line_is_byte_for_byte_what_json_dumps_writes(
    operation: Operation, route: str, peer: str, duration_s: float
) -> None:
    stream = Writes()
    configure_logging(json=True, stream=stream)
    answered = RequestCompleted(peer, operation, route, "mainframe", "00", duration_s)
    try:
        log_event(answered)
    finally:
        structlog.reset_defaults()
    (line,) = stream.writes
    stamp = json.loads(line)["timestamp"]
    fields = {**_request_fields(answered), "event": "request", "level": "info", "timestamp": stamp}
    assert line == json.dumps(fields) + "\n"


def test_answered_lines_follow_the_level_and_the_console() -> None:
    answered = RequestCompleted("127.0.0.1:5", Operation.LOOKUP, "all", "mainframe", "00", 0.0025)
    failed = replace(answered, fejlnr="09", error="mainframe: no answer within 5s")
    quiet, console = Writes(), Writes()
    try:
        configure_logging(json=True, level="warning", stream=quiet)
        log_event(answered)
        log_event(failed)
        configure_logging(json=False, stream=console)
        log_event(answered)
    finally:
        structlog.reset_defaults()
    assert [json.loads(w)["fejlnr"] for w in quiet.writes] == ["09"]  # info is filtered out
    assert len(console.writes) == 1 and not console.writes[0].startswith("{")
    assert "request" in console.writes[0] and "mainframe" in console.writes[0]
