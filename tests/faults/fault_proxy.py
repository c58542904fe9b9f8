"""A fault-injecting TCP proxy for tests, put between the gateway and a backend.

    async with fault_proxy(backend_port) as proxy:
        ...  # point the gateway's backend at 127.0.0.1:proxy.port
        await proxy.inject(Faults(blackhole=True))
        ...
        await proxy.inject(HEALTHY)

It forwards bytes, TLS or HTTP/2 alike, and knows nothing of what they mean. The faults
are switched at runtime and apply to connections already open as well as new ones: a
byte count (``reset_after``, ``cut_after``) counts from the later of the connection's
start and the switch. ``drop_existing`` resets every open connection at the switch,
which is how a fault reaches a gRPC channel that keeps one connection for all its calls.

Each direction of a connection is a reader that queues what arrives (with when it
arrived) and a writer that forwards it under the current faults, so latency is added
once per chunk, not once per chunk waiting behind it. The queue is unbounded: a test
moves a few kilobytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

#: Bytes read at once from either side.
_CHUNK = 65536
#: A writer whose peer has stopped reading is given up after this long (a test's hang guard
#: is longer, so a wedged proxy shows up as the gateway's fault, not the proxy's).
_CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Faults:
    """What the proxy does to traffic; the defaults pass everything through unchanged."""

    #: Seconds each chunk from the gateway to the backend is held before it goes on.
    latency_up: float = 0.0
    #: Seconds each chunk from the backend to the gateway is held before it goes on.
    latency_down: float = 0.0
    #: Accept connections, forward nothing either way and connect to nobody until cleared
    #: (then what was held goes on, as after a healed network partition).
    blackhole: bool = False
    #: Accept, then reset (RST) at once without connecting to the backend.
    reset_on_connect: bool = False
    #: Reset both ends after this many bytes, either way.
    reset_after: int | None = None
    #: Forward one byte per write.
    slice: bool = False
    #: Bytes per second, in each direction of each connection (written a twentieth of a
    #: second's worth at a time).
    bandwidth: int | None = None
    #: Close both ends (FIN, no RST) after this many bytes of answer (backend to gateway).
    cut_after: int | None = None
    #: Seconds the backend's end of stream (its FIN) is held back from the gateway.
    slow_close: float = 0.0
    #: Nothing listens: connections are refused. Open ones are reset when it goes down.
    down: bool = False


HEALTHY = Faults()


@dataclass(frozen=True, slots=True)
class Traffic:
    """Bytes one finished connection carried each way."""

    up: int
    down: int
    #: Writes the proxy made to carry them (slicing and bandwidth limits make more).
    writes: int


class _Stop(Exception):
    """A byte budget ran out: ``reset`` (RST both ends) or ``cut`` (close both ends)."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class FaultProxy:
    """One listening port in front of one backend address."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        #: Where connections go.
        self.upstream = (upstream_host, upstream_port)
        self.faults = HEALTHY
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[_Connection] = set()
        #: Every finished connection's byte counts, in the order they ended.
        self.finished: list[Traffic] = []

    @property
    def open_connections(self) -> int:
        """Connections the proxy holds now."""
        return len(self._connections)

    async def start(self) -> int:
        """Listen on a free loopback port (the same one again after :attr:`Faults.down`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def inject(self, faults: Faults, *, drop_existing: bool = False) -> None:
        """Apply ``faults`` from now on; ``drop_existing`` resets every open connection."""
        self.faults = faults
        for connection in self._connections:
            connection.restart_budgets()
        if faults.blackhole:
            self._flowing.clear()
        else:
            self._flowing.set()
        if drop_existing or faults.down:
            for connection in list(self._connections):
                connection.abort()
        if faults.down and self._server is not None:
            await self._stop_listening()
        elif not faults.down and self._server is None:
            await self.start()

    async def aclose(self) -> None:
        """Stop listening and reset every connection still open."""
        for connection in list(self._connections):
            connection.abort()
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.run()
        except asyncio.CancelledError:
            if not connection.aborted:
                raise
        finally:
            self._connections.discard(connection)
            self.finished.append(
                Traffic(connection.total_up, connection.total_down, connection.writes)
            )

    async def wait_flowing(self) -> None:
        """Return once no blackhole holds traffic."""
        await self._flowing.wait()


@dataclass(eq=False)
class _Connection:
    """One client connection and its upstream twin."""

    proxy: FaultProxy
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_writer: asyncio.StreamWriter | None = None
    total_up: int = 0
    total_down: int = 0
    writes: int = 0
    #: Bytes since the last switch of faults (or the start): what the budgets count.
    since_switch: int = 0
    answer_since_switch: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    #: Reset by the proxy (its task is cancelled for it, which is not an error).
    aborted: bool = False

    def restart_budgets(self) -> None:
        self.since_switch = self.answer_since_switch = 0

    async def run(self) -> None:
        self.task = asyncio.current_task()
        try:
            if self.proxy.faults.reset_on_connect:
                raise _Stop("reset")
            await self.proxy.wait_flowing()
            upstream_reader, self.upstream_writer = await asyncio.open_connection(
                *self.proxy.upstream
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._direction(self.client_reader, self.upstream_writer, False))
                group.create_task(self._direction(upstream_reader, self.client_writer, True))
        except* _Stop as stopped:
            if "reset" in {stop.how for stop in _leaves(stopped)}:
                self.abort()
        except* (OSError, asyncio.IncompleteReadError):
            self.abort()
        finally:
            await self._close()

    def abort(self) -> None:
        """Reset both ends (RST, not FIN) and stop forwarding."""
        self.aborted = True
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None and not writer.transport.is_closing():
                _linger_zero(writer)
                writer.transport.abort()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def _close(self) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            if writer is None:
                continue
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await writer.wait_closed()
            writer.transport.abort()

    async def _direction(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, down: bool
    ) -> None:
        """Read ``source`` into a queue and forward it to ``sink``, concurrently."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def read() -> None:
            while True:
                data = await source.read(_CHUNK)
                queue.put_nowait((loop.time(), data))
                if not data:
                    return

        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            while True:
                arrived, data = await queue.get()
                await self._hold(arrived, data, down)
                if not data:
                    if sink.can_write_eof() and not sink.transport.is_closing():
                        sink.write_eof()
                    return
                await self._forward(data, sink, down)

    async def _hold(self, arrived: float, data: bytes, down: bool) -> None:
        """Wait out a blackhole, then the direction's latency (and a slow close's delay)."""
        await self.proxy.wait_flowing()
        faults = self.proxy.faults
        delay = faults.latency_down if down else faults.latency_up
        if down and not data:
            delay += faults.slow_close
        due = arrived + delay - asyncio.get_running_loop().time()
        if due > 0:
            await asyncio.sleep(due)

    async def _forward(self, data: bytes, sink: asyncio.StreamWriter, down: bool) -> None:
        """Write ``data`` in the pieces the current faults make (re-read before each piece,
        so that clearing a fault takes effect within one piece)."""
        while data:
            faults = self.proxy.faults
            piece, stop = self._within_budget(data[: _piece_size(faults, len(data))], down)
            data = data[len(piece) :]
            if piece:
                sink.write(piece)
                self.writes += 1
                await sink.drain()
                if faults.bandwidth:
                    await asyncio.sleep(len(piece) / faults.bandwidth)
            if stop is not None:
                raise _Stop(stop)

    def _within_budget(self, piece: bytes, down: bool) -> tuple[bytes, str | None]:
        """``piece`` cut to what the reset and cut budgets allow, and whether one ran out."""
        faults = self.proxy.faults
        stop = None
        if faults.reset_after is not None:
            left = faults.reset_after - self.since_switch
            if len(piece) >= left:
                piece, stop = piece[: max(left, 0)], "reset"
        if down and faults.cut_after is not None and stop is None:
            left = faults.cut_after - self.answer_since_switch
            if len(piece) >= left:
                piece, stop = piece[: max(left, 0)], "cut"
        self.since_switch += len(piece)
        if down:
            self.answer_since_switch += len(piece)
            self.total_down += len(piece)
        else:
            self.total_up += len(piece)
        return piece, stop


def _leaves(group: BaseExceptionGroup[_Stop]) -> list[_Stop]:
    """The stops in ``group``, however deeply task groups nested them."""
    found: list[_Stop] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        else:
            found.append(exc)
    return found


def _piece_size(faults: Faults, size: int) -> int:
    """Bytes per write: one when slicing; a twentieth of a second's worth under a bandwidth
    limit (so the pace is even and a cleared limit ends soon); else everything at once."""
    if faults.slice:
        return 1
    if faults.bandwidth:
        return max(1, faults.bandwidth // 20)
    return size


def _linger_zero(writer: asyncio.StreamWriter) -> None:
    """Make the next close send RST: SO_LINGER on, with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@asynccontextmanager
async def fault_proxy(
    upstream_port: int, upstream_host: str = "127.0.0.1"
) -> AsyncIterator[FaultProxy]:
    """A started proxy in front of ``upstream_host:upstream_port`` for the block."""
    proxy = FaultProxy(upstream_host, upstream_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()
