"""The ``audit`` section of routing.yaml: where the audit log of lookups is written, and how
durably (docs/audit.md). Absent: no audit log.

    audit:
      directory: var/audit      # beside routing.yaml; made 0700, files 0600
      key_file: var/audit.key   # HMAC key of the PNR pseudonyms (made 0600 when missing)
      fsync: interval           # every | interval | never
      fsync_interval: 1s
      rotate_size: 64MiB
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import reader as r
from gateway.config.reader import Problem, Problems, show

#: Smallest ``rotate_size``: a few records per file (tests rotate often; production should not).
MIN_ROTATE_SIZE = 1024
_SIZE = re.compile(r"(\d+)(B|KiB|MiB|GiB)")
_SIZE_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


class FsyncPolicy(enum.StrEnum):
    """When the audit log asks the disk to keep what it wrote (docs/audit.md, "Crashes")."""

    #: After every batch of records written (a batch is what gathered in one writer tick).
    EVERY = "every"
    #: At most ``fsync_interval`` after a record is written.
    INTERVAL = "interval"
    #: Never by itself: the kernel writes back when it likes (and at rotation and shutdown).
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Audit:
    """Where and how the audit log of lookups is written (gateway.audit)."""

    #: The directory of the log's files (every gateway process writes files of its own).
    directory: Path
    #: The key of the PNR pseudonyms (hex, mode 0600); made when missing. Keep it: without
    #: it, nobody can ask "who looked up this person".
    key_file: Path
    fsync: FsyncPolicy = FsyncPolicy.INTERVAL
    #: Seconds between fsyncs under ``fsync: interval``.
    fsync_interval: float = 1.0
    #: Bytes after which a file is closed and the next one begun (chained to it).
    rotate_size: int = 64 * 2**20


_DEFAULT = Audit(Path("."), Path("."))


def parse_audit(
    problems: Problems, raw: object, path: str, file: Callable[[object, str], Path]
) -> Audit:
    """The ``audit`` section; ``file`` resolves a path beside routing.yaml. ``key_file``
    defaults to the directory's name with ``.key`` (``var/audit`` → ``var/audit.key``)."""
    keys = ("directory", "key_file", "fsync", "fsync_interval", "rotate_size")
    s = problems.section(raw, path, keys)
    directory = s.get("directory", file)
    key_file = s.get("key_file", file, None)
    fsync = s.get("fsync", r.one_of(FsyncPolicy, "fsync policy"), _DEFAULT.fsync)
    interval = s.get("fsync_interval", r.positive_duration, _DEFAULT.fsync_interval)
    rotate_size = s.get("rotate_size", _size, _DEFAULT.rotate_size)
    s.done()  # every value is good from here on
    key_file = key_file or directory.with_name(directory.name + ".key")
    return Audit(directory, key_file, fsync, interval, rotate_size)


def _size(raw: object, _path: str) -> int:
    """Bytes from ``64MiB``, ``512KiB``, ``1GiB`` or ``4096B``; at least MIN_ROTATE_SIZE."""
    found = _SIZE.fullmatch(raw) if isinstance(raw, str) else None
    if found is None:
        raise Problem(f"bad size {show(raw)} (expected e.g. 64MiB, 512KiB, 1GiB)")
    size = int(found[1]) * _SIZE_UNITS[found[2]]
    if size < MIN_ROTATE_SIZE:
        raise Problem(f"{show(raw)} is below the least size, {MIN_ROTATE_SIZE}B")
    return size
