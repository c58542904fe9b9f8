"""The fault proxy itself, in front of an echo server: each fault does what it says (the
matrix's outcomes are only as good as its faults)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fault_proxy import HEALTHY, FaultProxy, Faults, fault_proxy

MESSAGE = bytes(range(100))


@asynccontextmanager
async def echoed() -> AsyncIterator[tuple[FaultProxy, list[int]]]:
    """A proxy in front of a server that echoes until EOF and then closes; the list counts
    the connections the server accepted."""
    accepted: list[int] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server, fault_proxy(server.sockets[0].getsockname()[1]) as proxy:
        yield proxy, accepted


async def exchange(proxy: FaultProxy, data: bytes = MESSAGE) -> bytes:
    """Send ``data``, half-close, and read until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(data)
        writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def finished(proxy: FaultProxy, count: int) -> None:
    """Wait until the proxy has seen ``count`` connections end."""
    async with asyncio.timeout(10):
        while True:
            if len(proxy.finished) >= count:
                return
            await asyncio.sleep(0.01)


async def test_healthy_passes_bytes_unchanged() -> None:
    """No fault: what goes in comes back whole, in one write each way."""
    async with echoed() as (proxy, _):
        assert await exchange(proxy) == MESSAGE
        await finished(proxy, 1)
        assert proxy.finished[0].up == proxy.finished[0].down == len(MESSAGE)


async def test_slicing_writes_one_byte_at_a_time() -> None:
    """Slicing: every byte its own write, both ways, and nothing lost."""
    async with echoed() as (proxy, _):
        await proxy.inject(Faults(slice=True))
        assert await exchange(proxy) == MESSAGE
        await finished(proxy, 1)
        assert proxy.finished[0].writes == 2 * len(MESSAGE)


async def test_bandwidth_paces_in_small_writes() -> None:
    """A bandwidth limit writes a twentieth of a second's worth at a time."""
    async with echoed() as (proxy, _):
        await proxy.inject(Faults(bandwidth=400))  # 20 bytes a write
        assert await exchange(proxy) == MESSAGE
        await finished(proxy, 1)
        assert proxy.finished[0].writes == 2 * len(MESSAGE) // 20


async def test_reset_on_connect_resets() -> None:
    """Reset on connect: the client's connection is reset; the server never sees it."""
    async with echoed() as (proxy, accepted):
        await proxy.inject(Faults(reset_on_connect=True))
        with pytest.raises(ConnectionResetError):
            await exchange(proxy)
        assert accepted == []


async def test_reset_after_forwards_that_many_bytes_then_resets() -> None:
    """Reset after N bytes: N bytes reach the server, then both ends are reset."""
    async with echoed() as (proxy, _):
        await proxy.inject(Faults(reset_after=10))
        with pytest.raises(ConnectionResetError):
            await exchange(proxy)
        await finished(proxy, 1)
        assert proxy.finished[0].up == 10


async def test_cut_closes_after_that_many_answer_bytes() -> None:
    """Cut after N answer bytes: the client reads exactly N, then a clean end of stream."""
    async with echoed() as (proxy, _):
        await proxy.inject(Faults(cut_after=7))
        assert await exchange(proxy) == MESSAGE[:7]


async def test_blackhole_holds_until_cleared() -> None:
    """Blackhole: nobody is connected to while it lasts; cleared, what was held goes on."""
    async with echoed() as (proxy, accepted):
        await proxy.inject(Faults(blackhole=True))
        pending = asyncio.ensure_future(exchange(proxy))
        await asyncio.sleep(0.2)
        assert accepted == []
        assert not pending.done()
        await proxy.inject(HEALTHY)
        assert await pending == MESSAGE


async def test_down_refuses_then_up_serves_on_the_same_port() -> None:
    """Down: connections are refused and open ones reset; up again: served on the same port."""
    async with echoed() as (proxy, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        port = proxy.port
        await proxy.inject(Faults(down=True))
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await exchange(proxy)
        await proxy.inject(HEALTHY)
        assert proxy.port == port
        assert await exchange(proxy) == MESSAGE


async def test_drop_existing_resets_open_connections() -> None:
    """drop_existing: a connection open at the switch is reset (a gRPC channel's is)."""
    async with echoed() as (proxy, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        await proxy.inject(HEALTHY, drop_existing=True)
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()
