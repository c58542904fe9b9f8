"""One line of the audit log: a JSON object that carries the SHA-256 of the line before it.

Pure: no I/O. A line is compact JSON in ASCII (a client's odd bytes in a user id are
escaped, never written raw), without its newline; ``prev`` is the hex SHA-256 of the
previous line's bytes (without its newline), or :data:`GENESIS` for a writer's first line.

Kinds of record:

- ``lookup``: an answered request about a person (docs/audit.md lists its fields);
- ``start``: a writer opened a file: at start (``reason`` ``start`` or, when it found
  earlier files of its own, ``restart``), after rotation (``rotate``) or after a failed
  write (``recover``); ``torn`` is the number of bytes after the last whole line of the
  file before it (a crash cut that line; it stays where it is, outside the chain);
- ``lost``: ``count`` answered lookups were not written (``reason`` ``buffer_full`` or
  ``write_error``), so a gap in the log is written down in the log itself.
"""

from __future__ import annotations

import hashlib
import json
import time

#: ``prev`` of a writer's very first line: no line comes before it.
GENESIS = "0" * 64
LOOKUP = "lookup"
START = "start"
LOST = "lost"


def line_of(fields: dict[str, object], prev: str) -> bytes:
    """The line (no newline) for ``fields`` chained to the line whose hash is ``prev``."""
    return json.dumps({**fields, "prev": prev}, separators=(",", ":")).encode("ascii")


def hash_of(line: bytes) -> str:
    """What the next line carries as ``prev``."""
    return hashlib.sha256(line).hexdigest()


def parse(line: bytes) -> dict[str, object] | None:
    """The record on ``line``, or None when it is not a JSON object with a ``prev``."""
    try:
        record = json.loads(line)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return None
    if not isinstance(record, dict) or not isinstance(record.get("prev"), str):
        return None
    return record


class Stamper:
    """UTC times as ``2026-12-03T19:10:58.123456Z``: fixed width, so text order is time order.

    The date and time of the second are formatted once per second, the microseconds each
    time: the writer stamps every record.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
