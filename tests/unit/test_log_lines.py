"""Log lines reach their stream whole: one write per line, newline included.

Workers of one gateway (and a supervisor's other processes) share stderr. With an
unbuffered stderr (PYTHONUNBUFFERED=1, usual in containers) a line written as the
text and then its newline, two writes, can interleave with another process's line:
two JSON objects on one line and an empty line after them.
"""

from __future__ import annotations

import io
import json

import structlog

from gateway.observe.logs import configure_logging


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
