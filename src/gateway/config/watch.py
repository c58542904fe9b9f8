"""Noticing that routing.yaml changed, by polling: no inotify dependency, works on every mount.

Every ``interval`` the file is stat'ed (mtime, size, inode) and its bytes are
hashed; a routing.yaml is a few kilobytes, so reading it once a second costs
nothing, and the hash catches a rewrite that keeps size and (coarse) mtime. A
change is acted on only once the snapshot has stayed the same for one more poll,
so an editor that writes in several steps is read when it has finished, not
half-way. The hash then decides: a file touched or rewritten with the same bytes
is not a change. A file that disappears is reported once (the reload rejects it),
and again when it is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

#: (mtime in ns, size, inode, hash of the bytes), or None when the file cannot be read.
Snapshot = tuple[int, int, int, bytes] | None


def snapshot(path: Path) -> Snapshot:
    """What a poll compares."""
    try:
        st = os.stat(path)
        content = path.read_bytes()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino, hashlib.blake2b(content).digest()


class FileWatcher:
    """Calls ``on_change`` when ``path`` has new, settled content."""

    def __init__(
        self, path: Path, on_change: Callable[[], Awaitable[object]], *, interval: float = 1.0
    ) -> None:
        self._path = path
        self._on_change = on_change
        self._interval = interval
        self._seen: Snapshot = None
        self._tried: Snapshot = None
        self._loaded: bytes | None = None
        self.baseline()

    def baseline(self) -> None:
        """Take the file as it is now as loaded; call it whenever the file is (re)loaded."""
        self._seen = self._tried = now = snapshot(self._path)
        self._loaded = None if now is None else now[3]

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            if self.poll():
                await self._notify()

    def poll(self) -> bool:
        """One poll: True when settled content differs from what was loaded (or is gone)."""
        now = snapshot(self._path)
        if now != self._seen:  # still changing, or just changed: look again next poll
            self._seen = now
            return False
        if now == self._tried:
            return False
        self._tried = now
        return now is None or now[3] != self._loaded

    async def _notify(self) -> None:
        try:
            await self._on_change()
        except Exception as exc:  # a bug in one reload must not stop later ones
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"reloading {self._path} failed", "exception": exc}
            )
