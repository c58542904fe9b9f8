"""Real loopback parts for the backend and gateway adapter tests.

Fake CPR Direkte backends are real asyncio servers on port 0 that answer canned,
valid bytes built with the codec, or misbehave on purpose. The gateway runs for
real too, with a config built in code and its own metrics registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from cpr_devtools.client import Endpoint
from gateway.app import Gateway
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, LookupRequest, Record, seal
from gateway.codec.framing import record_length
from gateway.config.schema import (
    Admin,
    ClientTls,
    GatewayConfig,
    Limits,
    Listen,
    Match,
    Route,
    ServerTls,
)
from gateway.model import Family, FejlNr
from gateway.observe.events import Event

PNR = "0101601234"  # synthetic
TOKEN = "Tk3nAbCd"
PASSWORD = "Demo#123"
LOGON = LogonRequest("PRIV", "0001", "DEMO0001", PASSWORD)
LOOKUP = LookupRequest("PRIV", "0001", TOKEN, "DEMO0001", PNR)
LOGON_ANSWER = LogonAnswer("0001", "DEMO0001", FejlNr.OK, token=TOKEN).encode()
LOOKUP_ANSWER = LookupAnswer.for_request(
    LOOKUP,
    FejlNr.OK,
    seal(
        [
            Record(
                "000", {"PNR": "0" * 10, "OPGAVENR": "000101", "PRODDTO": dt.date(2026, 11, 25)}
            ),
            Record("001", {"PNR": PNR, "KOEN": "M", "STATUS": "01", "EFTERNVN": "Hansen"}),
        ],
        Family.PRIV,
    ),
).encode(Family.PRIV)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request record, framed the way a CPR Direkte server frames it."""
    head = await reader.readexactly(10)
    length = record_length(head)
    assert length is not None
    return head + await reader.readexactly(length - 10)


def answering(answer: bytes, received: list[bytes] | None = None) -> Handler:
    """A backend that reads one request and writes ``answer`` in one write."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if received is not None:
            received.append(request)
        writer.write(answer)
        await writer.drain()

    return handle


def canned(received: list[bytes] | None = None) -> Handler:
    """A backend that answers logons and lookups with valid canned answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if received is not None:
            received.append(request)
        writer.write(LOGON_ANSWER if len(request) == 35 else LOOKUP_ANSWER)
        await writer.drain()

    return handle


def held(arrived: asyncio.Event, release: asyncio.Event) -> Handler:
    """A backend that signals ``arrived`` and answers only once ``release`` is set."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        arrived.set()
        await release.wait()
        writer.write(LOGON_ANSWER if len(request) == 35 else LOOKUP_ANSWER)
        await writer.drain()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend that reads the request and never answers (until the caller hangs up)."""
    await read_request(reader)
    await reader.read()


async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend that reads the request and closes without a word."""
    await read_request(reader)


def _closing(handler: Handler) -> Handler:
    """Run ``handler`` and always close; a caller hanging up is not a failure of the fake."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


@asynccontextmanager
async def backend_server(
    handler: Handler, context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """A real asyncio server on a free loopback port; yields the port."""
    server = await asyncio.start_server(_closing(handler), "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll for a state the server reaches soon; a generous bound keeps a bug from hanging."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never seen: {what}")


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The port stays bound (never listening), so nothing else can take it meanwhile and the
    kernel cannot pick it as a connection's own port: a connection to a released port
    can, rarely, be its own peer (a TCP self-connect) and see its bytes echoed.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def gateway_config(
    backend_port: int,
    *,
    listen_tls: ServerTls | None = None,
    backend_tls: ClientTls | None = None,
    read_timeout: float = 0.5,
    max_connections: int = 64,
    grace_period: float = 2.0,
    deadline: float = 2.0,
) -> GatewayConfig:
    """Everything to one legacy backend ``mainframe`` via route ``all``; ports 0."""
    backend = LegacyBackendConfig("mainframe", "127.0.0.1", backend_port, backend_tls)
    return GatewayConfig(
        listen=Listen("127.0.0.1", 0, listen_tls),
        admin=Admin("127.0.0.1", 0),
        limits=Limits(read_timeout, max_connections, grace_period),
        backends={"mainframe": backend},
        routes=(Route("all", Match(), "mainframe", deadline),),
    )


@dataclass(frozen=True, slots=True)
class Running:
    """A started gateway and a plaintext client endpoint for it."""

    gateway: Gateway
    client: Endpoint


@asynccontextmanager
async def running(config: GatewayConfig) -> AsyncIterator[Running]:
    """Start a gateway for the block; drained and closed on exit."""
    gateway = Gateway(config)
    _host, port = await gateway.start()
    try:
        yield Running(gateway, Endpoint("127.0.0.1", port))
    finally:
        await gateway.aclose()


def next_event(gateway: Gateway, kind: type[Event]) -> asyncio.Event:
    """An asyncio.Event that is set when the gateway next emits an event of ``kind``."""
    seen = asyncio.Event()

    def watch(event: Event) -> None:
        if isinstance(event, kind):
            seen.set()

    gateway.bus.subscribe(watch)
    return seen


@asynccontextmanager
async def raw_connection(
    endpoint: Endpoint,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain client connection that the test drives byte by byte."""
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes; a reset (closing with unread input) reads as b""."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""
