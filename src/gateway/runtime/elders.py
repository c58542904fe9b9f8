"""Light traffic on the eldest workers of ``serve --workers N``, heavy traffic on all of them.

Every worker accepts from one listening socket, and the kernel wakes every listening
worker for each new connection; whichever runs first takes it. At a light load that
spreads connections evenly, each worker meets its next one with caches that the other
processes have filled since, and the workers that lose the race were woken for nothing:
on a machine whose cores do not share their L2, two workers spent 7-11 % more CPU per
lookup than one worker taking every connection (docs/benchmarks.md, "Light traffic over
two workers").

So a younger worker (index 1 and up) listens only while every elder is full, and rests
otherwise:

* the workers keep a board, a small file in their private directory mapped into each, in
  which each writes how many connections it has open (a 32-bit count per worker, written
  by its owner only);
* a worker whose count reaches :attr:`Elders.room` (:data:`ROOM`, or its connection limit
  if lower) writes a byte to each younger worker's wake-up FIFO in the same directory;
  a resting worker woken so listens if every elder is full;
* a listening younger worker woken for a connection while an elder has room again leaves
  it to the elder (which the kernel woke too) and rests;
* a worker that sheds (its loop runs late, gateway.server.admission) says it is full, so
  that no connection is left to a worker that would refuse it;
* a resting worker also looks at the accept queue every :data:`WATCH_S`: a connection
  queued at two looks in a row is one no elder took (busy or stuck), so it takes what is
  queued and listens, whether or not an elder has room, for :data:`COVER_S`.

The eldest worker always listens. Under load every elder is full and every worker accepts
at once, as before; a burst reaches the younger workers once the elders hold ``room``
connections each, which takes them a few accepts.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from pathlib import Path

#: The board's file in the workers' private directory (gateway.runtime.workers).
BOARD_FILE = "load"
#: Open connections at which a worker has no room for light traffic: with fewer, a new
#: connection waits for nothing on it (its own work is a few milliseconds of CPU).
ROOM = 4
#: How often a resting worker looks at the accept queue for connections no elder took.
WATCH_S = 0.1
#: How long a worker that found such connections accepts as if every elder were full.
COVER_S = 1.0
#: Bytes per worker on the board (one native 32-bit count).
_COUNT_BYTES = 4


def wake_path(directory: Path, index: int) -> Path:
    """Worker ``index``'s wake-up FIFO in ``directory``."""
    return directory / f"wake-{index}"


def prepare_board(directory: Path, workers: int) -> None:
    """The board and the younger workers' FIFOs for ``workers`` workers (by the parent)."""
    (directory / BOARD_FILE).write_bytes(bytes(_COUNT_BYTES * workers))
    for index in range(1, workers):
        os.mkfifo(wake_path(directory, index), 0o600)


class Elders:
    """One worker's side of the board: its own count, its elders', and the wake-ups."""

    def __init__(self, board: mmap.mmap, index: int, directory: Path) -> None:
        self._board = board  # kept: the view below needs the mapping alive
        self._counts = memoryview(board).cast("i")
        self._index = index
        self._directory = directory
        #: The younger workers' FIFOs, opened for writing once each has opened its own.
        self._youngers: dict[int, int] = {}
        #: Connections at which this worker and its elders are full (see ``publish``).
        self.room = ROOM

    @classmethod
    def attach(cls, directory: Path, index: int) -> Elders | None:
        """Worker ``index``'s side of the board in ``directory``; None when there is none
        (a worker started by an older parent) or it has no place for ``index``."""
        try:
            with (directory / BOARD_FILE).open("r+b") as file:
                board = mmap.mmap(file.fileno(), 0)
        except (OSError, ValueError):  # missing, or empty (mmap cannot map 0 bytes)
            return None
        if not 0 <= index < len(board) // _COUNT_BYTES:
            board.close()
            return None
        return cls(board, index, directory)

    @property
    def index(self) -> int:
        """This worker's place: 0 is the eldest, which always listens."""
        return self._index

    @property
    def workers(self) -> int:
        """How many workers the board has places for."""
        return len(self._counts)

    def publish(self, open_connections: int) -> None:
        """This worker has ``open_connections`` open now; at ``room`` it wakes the younger
        workers, which may have to listen."""
        self._counts[self._index] = open_connections
        if open_connections == self.room:
            self._wake_youngers()

    def declare_full(self) -> None:
        """This worker refuses new connections for now (its loop runs late: it sheds), so it
        has no room whatever its count says, until its count next changes."""
        self._counts[self._index] = max(self._counts[self._index], self.room)
        self._wake_youngers()

    def have_room(self) -> bool:
        """Whether an elder has fewer than ``room`` connections open."""
        counts, room = self._counts, self.room
        return any(counts[elder] < room for elder in range(self._index))

    def open_wakes(self) -> int:
        """This worker's wake-up FIFO, open (non-blocking) for its event loop to read."""
        # O_RDWR: a FIFO opened so has a writer of its own, and never reads as closed.
        return os.open(wake_path(self._directory, self._index), os.O_RDWR | os.O_NONBLOCK)

    @staticmethod
    def drain(wakes: int) -> None:
        """Read every wake-up byte waiting on ``wakes`` (they say only: look again)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(wakes, 64):
                pass

    def close(self) -> None:
        """Close the younger workers' FIFOs this worker opened."""
        for fd in self._youngers.values():
            os.close(fd)
        self._youngers.clear()

    def _wake_youngers(self) -> None:
        for younger in range(self._index + 1, self.workers):
            fd = self._youngers.get(younger)
            if fd is None:
                fd = self._open_younger(younger)
                if fd is None:
                    continue
            try:
                os.write(fd, b"\0")
            except BlockingIOError:
                pass  # the FIFO is full of wake-ups it has not read yet: it will look
            except OSError:
                os.close(fd)
                del self._youngers[younger]

    def _open_younger(self, younger: int) -> int | None:
        """The younger worker's FIFO for writing; None while it has not opened it."""
        path = wake_path(self._directory, younger)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: not opened by its worker yet (or gone): next time
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        self._youngers[younger] = fd
        return fd
