"""One CPR Direkte connection as every server here serves it: one request, one answer, close.

The gateway's listener and the emulator both frame one request per connection within
one deadline, answer it in a single write (some clients do a single read, spec §1) and
close with the same patience; keeping that here means a fix to either reaches both.

It is an ``asyncio.Protocol`` rather than streams: the sans-IO framer is fed as bytes
arrive, the two deadlines are timer handles, and a connection costs a task only once
its request is whole. (A stream handler costs a task, a StreamReader and two
``asyncio.timeout`` blocks per connection, CPU that every connection paid;
docs/benchmarks.md, "Where the time goes, and what was changed": one
``asyncio.Protocol`` per connection.)

A connection goes reading → answering → closing → done. It is *done* once the
transport is gone and no answer is being made: a client that vanishes while its
request is in a backend does not cancel that request (a subscription must not be half
made); its answer is simply not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import traceback
from typing import cast

from gateway.codec import Request, RequestFramer
from gateway.codec.framing import TIMEOUT
from gateway.errors import FramingError
from gateway.observe.events import IDLE


class _Stage(enum.Enum):
    READING = "reading"  # framing the request, within the read deadline
    ANSWERING = "answering"  # the owner is making the answer; nothing more is read
    CLOSING = "closing"  # answered or rejected; the client has the same patience to go
    DONE = "done"  # transport gone, no answer in the making


class Connections:
    """A server's open connections: how many, and a way to drain them at shutdown."""

    def __init__(self) -> None:
        self._open: set[OneRequest] = set()
        self._emptied: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._open)

    async def drain(self, grace_s: float, reason: str) -> int:
        """Let open connections finish within ``grace_s``, then cut the rest; returns how many.

        A cut connection's answer in the making is cancelled with ``reason`` and its
        transport aborted.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self._until_empty()
        stragglers = list(self._open)
        for connection in stragglers:
            connection.cut(reason)
        await self._until_empty()  # aborts and cancellations are immediate
        return len(stragglers)

    async def _until_empty(self) -> None:
        while self._open:
            self._emptied = asyncio.Event()
            await self._emptied.wait()

    def _add(self, connection: OneRequest) -> None:
        self._open.add(connection)

    def _discard(self, connection: OneRequest) -> None:
        self._open.discard(connection)
        if not self._open and self._emptied is not None:
            self._emptied.set()


class OneRequest(asyncio.Protocol):
    """Frames one request as it arrives, has the owner answer it, writes that once, closes.

    Subclasses say what a request is answered with (:meth:`answer`) and report each
    outcome through the other hooks; every hook but :meth:`answer` is synchronous and
    must not raise.
    """

    def __init__(
        self, connections: Connections, patience_s: float, first_byte_s: float | None = None
    ) -> None:
        self._connections = connections
        self._patience_s = patience_s
        #: Seconds to the first byte, when shorter than the whole record's patience.
        self._first_byte_s = first_byte_s if first_byte_s and first_byte_s < patience_s else None
        self._framer = RequestFramer()
        self._stage = _Stage.READING
        self._lost = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        #: The connection's loop, from connection_made on (asked once: in Python 3.11 each
        #: asyncio.get_running_loop() is also a getpid system call).
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what the owner supplies ----------------------------------------------------------

    def admit(self) -> bool:
        """Whether to serve this connection at all (e.g. a connection limit); False drops it."""
        return True

    async def answer(self, request: Request, record: bytes) -> bytes:
        """The answer bytes for ``request``; ``record`` is exactly what the client sent."""
        raise NotImplementedError

    def rejected(self, error: FramingError, received: int) -> None:
        """The request could not be framed (garbage, early close, too slow); no answer goes."""

    def failed(self, error: Exception) -> None:
        """A bug (:meth:`answer` raised, or framing did): the connection is dropped unanswered."""

    def finished(self) -> None:
        """The connection is over (called once, for every admitted connection)."""

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None, "not connected yet"
        return self._transport

    def cut(self, reason: str) -> None:
        """Stop now: cancel an answer in the making and abort the transport (shutdown).

        A connection still reading is not rejected for it: the server left, not the client.
        """
        if self._stage is _Stage.READING:
            self._stop_timer()
            self._stage = _Stage.CLOSING
        if self._task is not None:
            self._task.cancel(reason)
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._loop = loop = asyncio.get_running_loop()
        if not self.admit():
            self._stage = _Stage.DONE
            self._transport.abort()
            return
        self._connections._add(self)
        # The whole record within the deadline, not each read: drip-feeding must not pay off.
        # With a first-byte deadline, one timer still serves: it fires at the first-byte
        # deadline and, if bytes came, is set again for the rest of the whole deadline.
        if self._first_byte_s is None:
            self._timer = loop.call_later(self._patience_s, self._expired)
        else:
            self._timer = loop.call_later(self._first_byte_s, self._first_byte_due)

    def data_received(self, data: bytes) -> None:
        if self._stage is not _Stage.READING:
            return  # past the one request: nothing more is read
        self._framer.receive_data(data)
        try:
            request = self._framer.next_request()
        except FramingError as exc:
            self._reject(exc)
            return
        except Exception as exc:  # a framing bug: this connection's alone, like one in answer()
            self._fail(exc)
            return
        if request is None:
            return
        self._stop_timer()
        self._stage = _Stage.ANSWERING
        transport = self._transport  # (not the property: one Python call fewer per request)
        assert transport is not None  # data came, so it is connected
        transport.pause_reading()
        assert self._loop is not None
        self._task = self._loop.create_task(self._answer(request), name="cpr-direkte request")

    def eof_received(self) -> bool:
        # Seen only while reading: reading stops once the request is whole, so a client
        # that half-closes after its record is not seen to, and still gets its answer.
        if self._stage is _Stage.READING:
            self._reject(self._framer.end_of_stream())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_timer()
        if self._stage is _Stage.READING:  # reset or TLS failure mid-record: the peer is gone
            self._stage = _Stage.CLOSING
            self.rejected(self._framer.end_of_stream(), self._framer.buffered)
        self._finish_if_done()

    # -- the stages -----------------------------------------------------------------------

    async def _answer(self, request: Request) -> None:
        try:
            answer = await self.answer(request, self._framer.record)
        except Exception as exc:  # one connection's bug must not end the server
            self._fail(exc)
        except asyncio.CancelledError:
            self._stage = _Stage.CLOSING
            self.transport.abort()
            raise
        else:
            self._stage = _Stage.CLOSING
            transport = self.transport
            if not transport.is_closing():  # a client that left gets nothing written
                transport.write(answer)
                self._close()
        finally:
            self._finish_if_done()

    def _fail(self, error: Exception) -> None:
        self._stop_timer()
        self._stage = _Stage.CLOSING
        self.failed(error)
        self.transport.abort()

    def _reject(self, error: FramingError) -> None:
        self._stop_timer()
        self._stage = _Stage.CLOSING
        self.rejected(error, self._framer.buffered)
        self._close()

    def _close(self) -> None:
        """Flush and close; a client that will not take its answer in time is aborted."""
        transport = self._transport
        assert transport is not None  # only a connected one closes
        transport.close()
        if not self._lost:
            assert self._loop is not None
            self._timer = self._loop.call_later(self._patience_s, self._expired)

    def _first_byte_due(self) -> None:
        """The first-byte deadline: a connection that sent nothing is idle and rejected."""
        assert self._first_byte_s is not None
        self._timer = None
        if self._stage is not _Stage.READING:
            return
        if self._framer.buffered == 0:
            self._reject(FramingError(IDLE, f"no byte within {self._first_byte_s:g}s"))
            return
        rest = self._patience_s - self._first_byte_s
        assert self._loop is not None
        self._timer = self._loop.call_later(rest, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._stage is _Stage.READING:
            error = FramingError(TIMEOUT, f"incomplete after {self._patience_s:g}s")
            self._reject(error)
        else:
            self.transport.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish_if_done(self) -> None:
        if self._lost and self._stage is _Stage.CLOSING:
            self._stage = _Stage.DONE
            self._connections._discard(self)
            self.finished()


def describe_failure(exc: BaseException) -> str:
    """Exception type and the line it came from; the message is left out in case it holds data."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename}:{last.lineno}"
