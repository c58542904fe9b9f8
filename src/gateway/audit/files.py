"""The audit directory: whose files are whose, which writer a process is, and a file's end.

Each gateway process writes files of its own, so that two writers never share a file:
``audit-<host>-<slot>.<sequence>.jsonl``. The slot is the lowest number whose lock file
(``audit-<host>-<slot>.lock``, held with ``flock`` while the process runs) nobody holds,
so a restarted process (or worker) takes its predecessor's slot and carries on its chain,
while processes running at once (workers, replicas on one host) get slots of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from gateway.storage.files import FILE_MODE, private_directory

PREFIX = "audit-"
SUFFIX = ".jsonl"
_NAME = re.compile(r"(audit-[A-Za-z0-9_-]+)\.(\d+)\.jsonl")
#: Slots tried before giving up: far more processes than one host runs with one directory.
MAX_SLOTS = 1024
#: Bytes read back from a file's end to find its last whole line: records are a few hundred
#: bytes, so this holds several of them.
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Tail:
    """The end of a writer's chain on disk: its last whole line and what a crash left after it."""

    #: The last whole line (no newline); None when no file of the writer holds one.
    line: bytes | None
    #: Bytes after the last whole line of the last file (a torn write), 0 normally.
    torn: int
    #: The file it was found in (None without files).
    file: Path | None


def file_name(writer: str, sequence: int) -> str:
    """The name of ``writer``'s file number ``sequence``."""
    return f"{writer}.{sequence:06d}{SUFFIX}"


def writers(directory: Path) -> dict[str, list[tuple[int, Path]]]:
    """Every writer's files in ``directory``, in sequence order."""
    found: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            if (match := _NAME.fullmatch(path.name)) is not None:
                found[match[1]].append((int(match[2]), path))
    return {writer: sorted(files) for writer, files in sorted(found.items())}


def host_name() -> str:
    """This host's name, fit for a file name (dots and anything odd become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def claim_writer(directory: Path, host: str) -> tuple[str, int]:
    """The writer name this process writes as, and the descriptor of the lock that holds it
    (keep it open while writing; closing it frees the slot). OSError when none is free."""
    private_directory(directory)
    for slot in range(MAX_SLOTS):
        writer = f"{PREFIX}{host}-{slot}"
        fd = os.open(directory / f"{writer}.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return writer, fd
    raise OSError(f"every one of {MAX_SLOTS} writer slots in {directory} is taken")


def tail(files: list[tuple[int, Path]]) -> Tail:
    """Where a writer's chain ends on disk: the last whole line of its latest file that has one
    (an empty file, made just before a crash, is passed over), and the last file's torn bytes."""
    torn = 0
    for index, (_sequence, path) in enumerate(reversed(files)):
        line, after = _last_line(path)
        if index == 0:
            torn = after
        if line is not None:
            return Tail(line, torn, path)
    return Tail(None, torn, files[-1][1] if files else None)


def _last_line(path: Path) -> tuple[bytes | None, int]:
    """The last whole line of ``path`` (None if it has none) and the bytes after it."""
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - TAIL_BYTES))
        chunk = file.read()
    end = chunk.rfind(b"\n")
    if end < 0:
        return None, len(chunk)
    start = chunk.rfind(b"\n", 0, end) + 1
    if start == 0 and size > TAIL_BYTES:
        raise OSError(f"{path}: a line longer than {TAIL_BYTES} bytes")
    return chunk[start:end], len(chunk) - end - 1
