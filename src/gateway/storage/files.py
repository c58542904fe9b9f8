"""Files and directories only their owner may read: where personal data and secrets live.

Every file that holds personal data (the register, the stores, the shadow evidence) or a
secret (keys, tokens) is created mode 0600, in directories created 0700. The mode is given
when the file is *created*, never by a chmod after data was written: between the two, anyone
on the machine could open it (and keep the descriptor). The process's umask is left alone;
it can only take bits away from these modes.

A SQLite file is made here, empty and 0600, before sqlite3 opens it: SQLite opens an
existing file as it is, and creates its side files (-wal, -shm, -journal) with the mode of
the main file. A directory or file that exists already keeps its mode: that is the
operator's choice (the token and key loaders refuse a secret that others may read).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gateway.errors import ConfigError

#: Mode of a file that holds personal data or a secret.
FILE_MODE = 0o600
#: Mode of a directory made to hold such files.
DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> Path:
    """Make ``path`` and each missing directory above it 0700 (``mkdir -p`` would make the
    ones above with the umask's mode); one that exists is left as it is. Returns ``path``."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            directory.mkdir(mode=DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make ``path`` an empty 0600 file unless it exists (its directory as
    :func:`private_directory`), for a program that then opens it by name. Returns ``path``."""
    private_directory(path.parent)
    # O_EXCL: an existing file is never opened. Closing any descriptor of a file drops every
    # POSIX lock this process holds on it, SQLite's included: another process closing the
    # database would then think itself the last and delete the WAL a live writer still uses.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, created 0600 (its directory as :func:`private_directory`);
    a file already there is made 0600 before the data goes in."""
    private_directory(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, FILE_MODE)
        out.write(data)


def read_secret(path: Path, what: str, limit: int) -> bytes:
    """The bytes of the secret file ``path`` (at most ``limit + 1``: more is the caller's
    "too large"). ConfigError, ``what`` first, when it cannot be read or when others than
    its owner may read it (group or world bits): a secret others can read is not one."""
    try:
        mode = path.stat().st_mode
        with path.open("rb") as file:
            raw = file.read(limit + 1)
    except OSError as exc:
        raise ConfigError([f"{what}: cannot read it ({exc.strerror or exc})"]) from None
    if mode & 0o077:
        raise ConfigError([f"{what}: mode {mode & 0o777:o} lets others read it; use 600"])
    return raw
