"""The audit log's writer: a bus subscriber that hands answered lookups to a thread of its own.

The event loop only appends the event to a bounded buffer (a ``deque``: appending on the
loop and taking on the thread need no lock). The thread sleeps until a lookup comes; then,
every :data:`TICK_S` (:data:`TICK_EVERY_S` under ``fsync: every``) while they keep coming,
it pseudonymises, formats and chains what gathered, writes it with one ``write``, and
fsyncs as ``audit.fsync`` says. The answer never waits for the disk: a full buffer or a
failed write loses records, and each loss is counted (``cpr_gateway_audit_dropped_total``),
logged, and written into the chain itself as a ``lost`` record once writing works again
(docs/audit.md, "When writing fails").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.files import claim_writer, file_name, host_name, tail, writers
from gateway.audit.record import GENESIS, LOOKUP, LOST, START, Stamper, hash_of, line_of
from gateway.config.audit import Audit, FsyncPolicy
from gateway.errors import ConfigError
from gateway.observe.events import AuditFile, AuditLost, Event, LookupAnswered
from gateway.shadow.pseudonym import Pseudonymiser, load_key
from gateway.storage.files import FILE_MODE, private_directory

#: How often the thread writes what gathered while lookups come: the longest a record waits
#: in memory. A thread's wake-up costs up to a few hundred microseconds of CPU on a busy
#: virtual machine (docs/benchmarks.md, "The audit log of lookups"), so at most 5 a second,
#: and none while no lookup comes.
TICK_S = 0.2
#: The same under ``fsync: every``, whose operator chose durability over CPU.
TICK_EVERY_S = 0.02
#: While no lookup comes, the thread still wakes this often for a due fsync or report.
IDLE_S = 1.0
#: Records waiting for the thread at most: at the ~500 lookups/s a gateway process answers
#: (docs/benchmarks.md) over two minutes of a stalled disk, about 20 MiB of events.
MAX_PENDING = 2**16
#: Records formatted into one write: bounds the bytes held at once (~1 MiB).
MAX_BATCH = 4096
#: Losses are logged (and counted) at most this often: a full disk fails every tick.
REPORT_EVERY_S = 1.0
#: After a file could not be opened or written, a new one is tried no sooner than this: a
#: full disk would otherwise cost a file name (or an empty file) every tick.
RETRY_AFTER_S = 1.0
#: The environment variable the key comes from when its file does not exist yet.
KEY_ENV = "CPR_GATEWAY_AUDIT_KEY"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND


@dataclass(frozen=True, slots=True)
class _Record:
    """A record formatted but not yet chained, and what is lost if it is not written."""

    fields: dict[str, object]
    #: Answered lookups it stands for: 1 for a lookup, ``count`` for a lost record.
    lookups: int = 0
    #: For a lost record: its reason (kept for the next one if it is not written).
    lost: str | None = None


@dataclass(frozen=True, slots=True)
class _Entry:
    """A chained line of a write (newline included), and the heads before and after it."""

    record: _Record
    line: bytes
    prev: str
    head: str


class AuditLog:
    """The audit log of one process: subscribe :meth:`on_event` to the bus, :meth:`start`,
    and :meth:`aclose` after the last request was answered."""

    def __init__(
        self,
        settings: Audit,
        pseudonymiser: Pseudonymiser,
        emit: Callable[[Event], None],
        *,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._settings = settings
        self._pseudonymiser = pseudonymiser
        self._emit = emit
        self._host = host or host_name()
        self._clock = clock
        self._max_pending = max_pending
        self._pending: deque[tuple[float, LookupAnswered]] = deque()
        #: Lookups dropped because the buffer was full (written by the event loop only).
        self._dropped = 0
        self._stop = threading.Event()
        self._tick_s = TICK_EVERY_S if settings.fsync is FsyncPolicy.EVERY else TICK_S
        #: Set by the loop for the first lookup after the thread went idle.
        self._wake = threading.Event()
        self._idle = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The chain: touched by start's thread, then by the writer's only.
        self._stamp = Stamper()
        #: The name this process writes as (gateway.audit.files), once started.
        self.writer = ""
        self._lock_fd = -1
        self._fd = -1
        self._sequence = 0
        self._size = 0
        self._head = GENESIS
        self._dirty = False
        self._synced_at = 0.0
        self._drops_seen = 0
        #: Why the last write failed; bytes it left after the last whole line.
        self._failure = ""
        self._torn = 0
        #: Lookups taken from the buffer and not yet written or counted lost.
        self._in_hand = 0
        #: The hash of the last line on disk (the head runs ahead while a write is built).
        self._written = GENESIS
        #: When (monotonic) a new file may be tried after a failure.
        self._retry_at = 0.0
        #: Losses not yet written into the chain, and not yet told to the bus.
        self._lost: dict[str, int] = {}
        self._unreported: dict[str, tuple[int, str]] = {}
        self._reported_at = 0.0

    @property
    def file(self) -> Path:
        """The file being written (or the last one tried)."""
        return self._settings.directory / file_name(self.writer, self._sequence)

    def on_event(self, event: Event) -> None:
        """The bus subscriber: keep an answered lookup for the thread; never blocks."""
        if type(event) is LookupAnswered:
            if len(self._pending) < self._max_pending:
                self._pending.append((self._clock(), event))
                if self._idle:  # once per idle spell, not per lookup
                    self._idle = False
                    self._wake.set()
            else:
                self._dropped += 1

    async def start(self) -> None:
        """Claim a writer slot, continue its chain in a new file, and start the thread.

        OSError when the directory or a file cannot be made or written."""
        self._loop = asyncio.get_running_loop()
        notices = await asyncio.to_thread(self._open_chain)
        for notice in notices:
            self._emit(notice)
        self._thread = threading.Thread(target=self._run, name=f"audit:{self.writer}", daemon=True)
        self._thread.start()

    async def aclose(self, grace: float = 10.0) -> None:
        """Write what is pending, fsync, close; waits ``grace`` seconds for the disk at most."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, grace)

    # From here on, everything runs on the writer's thread (_open_chain before it starts).

    def _open_chain(self) -> list[Event]:
        directory = private_directory(self._settings.directory)
        self.writer, self._lock_fd = claim_writer(directory, self._host)
        files = writers(directory).get(self.writer, [])
        found = tail(files)
        notices: list[Event] = []
        if found.line is not None:
            self._head = self._written = hash_of(found.line)
        if found.torn and found.file is not None:
            detail = f"{found.torn} bytes after the last whole line; the chain goes on from it"
            notices.append(AuditFile("torn", str(found.file), self._head, detail))
        self._sequence = files[-1][0] if files else 0
        reason = "restart" if files else "start"
        if not self._open_next(reason, found.torn):
            os.close(self._lock_fd)
            raise OSError(f"audit log {self.file}: cannot be written ({self._failure})")
        notices.append(AuditFile("opened", str(self.file), self._head, reason))
        return notices

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wait_for_lookups()
            self._step()
            self._stop.wait(self._tick_s)  # let the next ones gather
        while self._pending:
            self._step()
        self._step()  # the drops of the last moment, as a lost record
        self._report(force=True)
        self._close_file()
        os.close(self._lock_fd)

    def _wait_for_lookups(self) -> None:
        """Sleep while nothing is pending (waking for a due fsync or report, or to stop)."""
        self._idle = True
        if self._pending or self._stop.is_set():  # came before the flag was seen
            self._idle = False
            return
        self._wake.wait(min(IDLE_S, self._settings.fsync_interval))
        self._wake.clear()
        self._idle = False

    def _step(self) -> None:
        """One tick; a bug in it loses that tick's lookups (counted), never the writer."""
        try:
            self._tick()
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            self._lose("write_error", self._in_hand, self._failure)
            self._head = self._written  # lines chained but not written are not on disk
            self._close_file(sync=False)  # the next records start a new file (recover)
            self._report()

    def _tick(self) -> None:
        drops = self._dropped - self._drops_seen
        if drops:
            self._drops_seen += drops
            self._lose("buffer_full", drops, "")
        items = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]
        self._in_hand = len(items)
        records = self._lost_records() + [self._lookup(at, event) for at, event in items]
        if records:
            self._write(records)
        self._in_hand = 0
        self._sync_if_due()
        self._report()

    def _lookup(self, at: float, event: LookupAnswered) -> _Record:
        pnr = event.pnr.strip()
        fields: dict[str, object] = {
            "time": self._stamp(at),
            "kind": LOOKUP,
            "customer": event.customer.strip(),
            "user": event.user.strip(),
            "source": event.source,
            "pnr": self._pseudonymiser.pnr(pnr) if pnr else "",
            "transaction": event.transaction.strip(),
            "operation": event.operation.value,
            "route": event.route,
            "side": event.backend,
            "fejlnr": event.fejlnr,
        }
        return _Record(fields, lookups=1)

    def _lost_records(self) -> list[_Record]:
        lost, self._lost = self._lost, {}
        now = self._stamp(self._clock())
        return [
            _Record({"time": now, "kind": LOST, "reason": r, "count": n}, lookups=n, lost=r)
            for r, n in lost.items()
        ]

    def _write(self, records: list[_Record]) -> None:
        """Chain and write ``records``, rotating when the file reaches ``rotate_size``; a
        file given up after a failure is replaced by a new one (``recover``) first."""
        chunk: list[_Entry] = []
        for index, record in enumerate(records):
            if self._fd < 0 and not self._reopen():
                self._unwind(records[index:])
                return
            chunk.append(self._chain(record))
            self._size += len(chunk[-1].line)
            if self._size >= self._settings.rotate_size:
                self._put(chunk)
                chunk = []
                if self._fd >= 0:
                    self._close_file()
                    self._open_next("rotate", 0)
        if chunk:
            self._put(chunk)

    def _reopen(self) -> bool:
        """A new file after a failure (``recover``), unless the last try was just now."""
        if time.monotonic() < self._retry_at:
            return False
        return self._open_next("recover", self._torn)

    def _chain(self, record: _Record) -> _Entry:
        """The next line of the chain; the head moves on (a failed write moves it back)."""
        prev = self._head
        line = line_of(record.fields, prev)
        self._head = hash_of(line)
        return _Entry(record, line + b"\n", prev, self._head)

    def _put(self, chunk: list[_Entry]) -> None:
        """One write of ``chunk``; on failure the file is given up (the next record opens
        another), the head goes back to the last whole line written, the rest is lost."""
        data = b"".join(entry.line for entry in chunk)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self._failure = exc.strerror or str(exc)
            self._give_up(chunk, written)
            return
        self._written = chunk[-1].head
        self._dirty = True
        if self._settings.fsync is FsyncPolicy.EVERY:
            self._sync()

    def _give_up(self, chunk: list[_Entry], written: int) -> None:
        done = 0
        for index, entry in enumerate(chunk):
            if done + len(entry.line) > written:
                self._torn = written - done
                self._head = self._written = entry.prev
                self._unwind([e.record for e in chunk[index:]])
                break
            done += len(entry.line)
        self._close_file(sync=False)

    def _unwind(self, records: list[_Record]) -> None:
        """``records`` were not written: their lookups are lost (a lost record's count is
        kept for the next one; it was told to the bus already)."""
        for record in records:
            if record.lost is not None:
                self._lost[record.lost] = self._lost.get(record.lost, 0) + record.lookups
            else:
                self._lose("write_error", record.lookups, self._failure)

    def _lose(self, reason: str, count: int, detail: str) -> None:
        if count <= 0:
            return
        self._lost[reason] = self._lost.get(reason, 0) + count
        before, _ = self._unreported.get(reason, (0, ""))
        self._unreported[reason] = (before + count, detail)

    def _report(self, *, force: bool = False) -> None:
        """Tell the bus (on the event loop) about losses, at most every REPORT_EVERY_S."""
        now = time.monotonic()
        if not self._unreported or (not force and now - self._reported_at < REPORT_EVERY_S):
            return
        self._reported_at = now
        unreported, self._unreported = self._unreported, {}
        for reason, (count, detail) in unreported.items():
            self._notify(AuditLost(reason, count, detail))

    def _notify(self, event: Event) -> None:
        loop = self._loop
        if loop is None or threading.current_thread() is not self._thread:
            return  # before the thread runs, start() emits what _open_chain returns
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._emit, event)

    def _open_next(self, reason: str, torn: int) -> bool:
        """Open the writer's next file and chain a start record to the head; False (with
        ``_failure``) when the disk refuses."""
        self._sequence += 1
        self._size = 0
        try:
            self._fd = os.open(self.file, _FLAGS, FILE_MODE)
            if self._settings.fsync is not FsyncPolicy.NEVER:
                _sync_directory(self._settings.directory)
        except OSError as exc:
            self._failure = exc.strerror or str(exc)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._failed_to_open()
            return False
        self._torn = 0
        fields: dict[str, object] = {
            "time": self._stamp(self._clock()),
            "kind": START,
            "writer": self.writer,
            "pid": os.getpid(),
            "reason": reason,
            "torn": torn,
        }
        entry = self._chain(_Record(fields))
        self._size = len(entry.line)
        self._put([entry])
        if self._fd < 0:
            self._failed_to_open()
            return False
        self._notify(AuditFile("opened", str(self.file), self._head, reason))
        return True

    def _failed_to_open(self) -> None:
        """Try again in a while, and leave no empty file behind (a full disk, every tick)."""
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        with contextlib.suppress(OSError):
            if self.file.stat().st_size == 0:
                self.file.unlink()

    def _sync_if_due(self) -> None:
        if self._settings.fsync is not FsyncPolicy.INTERVAL or not self._dirty or self._fd < 0:
            return
        if time.monotonic() - self._synced_at >= self._settings.fsync_interval:
            self._sync()

    def _sync(self) -> None:
        """fdatasync the file; a failure gives it up (what it held may not be on disk)."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._failure = exc.strerror or str(exc)
            self._close_file(sync=False)
            return
        self._dirty = False
        self._synced_at = time.monotonic()

    def _close_file(self, *, sync: bool = True) -> None:
        if self._fd < 0:
            return
        if sync and self._dirty:
            self._sync()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._notify(AuditFile("closed", str(self.file), self._head))


def _sync_directory(directory: Path) -> None:
    """Make a new file's name durable: fsync the directory that holds it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def open_audit_log(settings: Audit, emit: Callable[[Event], None]) -> AuditLog:
    """The audit log ``settings`` describe, started: its key loaded (or made, 0600), a writer
    slot claimed, its chain continued. ConfigError for an unusable key, or a directory or
    file that cannot be made or written."""
    key = await asyncio.to_thread(load_key, settings.key_file, KEY_ENV, "audit key")
    log = AuditLog(settings, Pseudonymiser(key), emit)
    try:
        await log.start()
    except OSError as exc:
        raise ConfigError([f"audit.directory {settings.directory}: {exc}"]) from None
    return log
