"""The emulator's transport (spec §1): TLS, one request and one write per connection, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from cpr_devtools.client import Endpoint, exchange, logon
from cpr_mainframe import default_config_path, load_config
from cpr_mainframe.server import OVER_CONNECTIONS
from emulator_harness import DEMO_PRIV, running_emulator
from gateway.codec import LogonAnswer, LogonRequest, LookupRequest
from gateway.codec.framing import INCOMPLETE, NO_COMMA, NOT_PRINTABLE, TIMEOUT, TOO_LONG
from gateway.model import FejlNr

LOGON = LogonRequest("PRIV", "0001", "DEMO0001", DEMO_PRIV.password).encode()
DEMO = load_config(default_config_path())


@contextlib.asynccontextmanager
async def connection(
    endpoint: Endpoint,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(
        endpoint.host,
        endpoint.port,
        ssl=endpoint.ssl,
        server_hostname=endpoint.server_hostname if endpoint.ssl else None,
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until EOF; a reset counts as the end."""
    try:
        return await reader.read()
    except (ConnectionResetError, ssl.SSLError):
        return b""


async def send_and_read(endpoint: Endpoint, data: bytes) -> bytes:
    async with connection(endpoint) as (reader, writer):
        writer.write(data)
        return await read_all(reader)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll for a state the emulator reaches soon; a generous bound keeps a bug from hanging."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the emulator never reached the expected state")


async def test_tls_is_on_by_default_and_verifies_against_the_ca() -> None:
    """A client trusting the test CA logs on over TLS; a plaintext client gets nothing."""
    async with running_emulator() as emu:
        assert emu.endpoint.ssl is not None
        token = await logon(emu.endpoint, DEMO_PRIV.who, DEMO_PRIV.password)
        plain = await send_and_read(Endpoint(emu.host, emu.port), LOGON)
    assert len(token) == 8
    assert plain == b""


async def test_plaintext_when_configured() -> None:
    """`tls: null` serves plaintext."""
    async with running_emulator(tls=False) as emu:
        raw = await exchange(emu.endpoint, LOGON)
    assert LogonAnswer.decode(raw).fejlnr is FejlNr.OK


async def test_answer_read_by_its_length_field_then_eof() -> None:
    """Header, then exactly length-28 more bytes, then EOF: the answer is whole and alone."""
    async with running_emulator() as emu:
        token = await logon(emu.endpoint, DEMO_PRIV.who, DEMO_PRIV.password)
        request = LookupRequest("PRIV", "0001", token, "DEMO0001", emu.pnrs(1)[0]).encode()
        async with connection(emu.endpoint) as (reader, writer):
            writer.write(request)
            header = await reader.readexactly(28)
            body = await reader.readexactly(int(header[24:28]) - 28)
            rest = await reader.read()
    assert header[22:24] == b"00" and len(body) > 0 and rest == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PRIV;0001900DEMO0001Demo#123        ", NO_COMMA),
        (b"GARBAGE-GARBAGE-GARBAGE", NO_COMMA),
        (b"PRIV,00019\x00" + b" " * 24, NOT_PRINTABLE),
        (LOGON + b"X", TOO_LONG),
    ],
    ids=["semicolon", "garbage", "nul-byte", "one-byte-too-long"],
)
async def test_unframeable_request_is_closed_without_answer(data: bytes, reason: str) -> None:
    """A request that cannot be framed gets no answer, and the reason is counted."""
    async with running_emulator() as emu:
        answer = await send_and_read(emu.endpoint, data)
        rejected = dict(emu.emulator.stats.rejected)
    assert answer == b""
    assert rejected == {reason: 1}


async def test_slow_client_is_closed_after_the_read_timeout() -> None:
    """Half a record and then silence: the emulator closes at its read timeout, no answer."""
    async with running_emulator(replace(DEMO, read_timeout_s=0.2)) as emu:
        answer = await send_and_read(emu.endpoint, LOGON[:20])
        rejected = dict(emu.emulator.stats.rejected)
    assert answer == b""
    assert rejected == {TIMEOUT: 1}


async def test_client_closing_mid_record_is_counted() -> None:
    """A client that closes before its record is complete gets nothing; counted as incomplete."""
    async with running_emulator(tls=False) as emu:
        async with connection(emu.endpoint) as (_reader, writer):
            writer.write(LOGON[:20])
            await writer.drain()
        await wait_until(lambda: emu.emulator.stats.rejected[INCOMPLETE] == 1)
        await wait_until(lambda: emu.emulator.connections == 0)


async def test_full_queue_answers_08_at_once() -> None:
    """With 1 region busy and 1 request queued (queue_limit 1), the next request gets 08."""
    config = replace(DEMO, regions=1, queue_limit=1, service_time_ms=60_000)
    async with running_emulator(config, tls=False) as emu:
        holding = asyncio.ensure_future(send_and_read(emu.endpoint, LOGON))
        queued = asyncio.ensure_future(send_and_read(emu.endpoint, LOGON))
        await wait_until(lambda: emu.emulator.busy == 1 and emu.emulator.queued == 1)
        refused = await exchange(emu.endpoint, LOGON)
        await emu.emulator.aclose(grace=0)  # the held requests are cut off: no minute-long test
        dropped = await asyncio.gather(holding, queued)
    assert LogonAnswer.decode(refused) == LogonAnswer("0001", "DEMO0001", FejlNr.NOT_ACTIVE)
    assert list(dropped) == [b"", b""]


async def test_shutdown_finishes_requests_in_flight() -> None:
    """aclose() stops accepting but lets a request already in its region answer."""
    async with running_emulator(replace(DEMO, service_time_ms=200), tls=False) as emu:
        in_flight = asyncio.ensure_future(exchange(emu.endpoint, LOGON))
        await wait_until(lambda: emu.emulator.busy == 1)
        await emu.emulator.aclose(grace=30)
        answer = await in_flight
        with pytest.raises(OSError):
            await exchange(emu.endpoint, LOGON)
    assert LogonAnswer.decode(answer).fejlnr is FejlNr.OK


async def test_connections_beyond_the_bound_are_dropped() -> None:
    """With max_connections 1 and one client idle, a second connection is dropped and counted."""
    async with (
        running_emulator(replace(DEMO, max_connections=1), tls=False) as emu,
        connection(emu.endpoint),
    ):
        await wait_until(lambda: emu.emulator.connections == 1)
        second = await send_and_read(emu.endpoint, LOGON)
        rejected = dict(emu.emulator.stats.rejected)
    assert second == b""
    assert rejected == {OVER_CONNECTIONS: 1}


async def test_concurrent_clients_each_get_their_own_answer() -> None:
    """Twenty clients at once (more than the regions) all get 00 with distinct tokens."""
    async with running_emulator(replace(DEMO, regions=2)) as emu:
        tokens = await asyncio.gather(
            *(logon(emu.endpoint, DEMO_PRIV.who, DEMO_PRIV.password) for _ in range(20))
        )
    assert len(set(tokens)) == 20
