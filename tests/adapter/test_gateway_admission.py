"""Admission through the real listener: connections counted at accept, before TLS, in all
and per source address; short handshake and first-byte timeouts; a request beyond
max_in_flight answered 08 at once; other clients served while one address floods."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import (
    LOGON,
    LOGON_ANSWER,
    LOOKUP,
    LOOKUP_ANSWER,
    Handler,
    Running,
    backend_server,
    canned,
    gateway_config,
    next_event,
    raw_connection,
    read_all,
    read_request,
    running,
)
from proxy_harness import CLIENT, LOOPBACK, STRANGER, exchange_after, header_for

from cpr_devtools.client import exchange
from cpr_devtools.pki import ensure_dev_pki
from gateway.codec.proxy_protocol import Address
from gateway.config.schema import GatewayConfig, ServerTls
from gateway.observe.events import ConnectionOpened, Event, LoopLagSampled, RequestRejected
from gateway.tls import client_context

#: The answers a lookup and a logon get when refused for capacity: FEJLNR 08, the lookup's
#: 28-byte header alone (length 0028), the logon's 24 bytes with a blank token (spec §4.3).
LOOKUP_REFUSED = b"000106Tk3nAbCdDEMO0001080028"
LOGON_REFUSED = b"000190        DEMO000108"
#: A second loopback address, so that a test has two source addresses.
OTHER_HOST = "127.0.0.2"


def _held(arrived: asyncio.Event, release: asyncio.Event, received: list[bytes]) -> Handler:
    """A backend that keeps what it receives, signals ``arrived`` and answers once
    ``release`` is set."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        received.append(request)
        arrived.set()
        await release.wait()
        writer.write(LOGON_ANSWER if request == LOGON.encode() else LOOKUP_ANSWER)
        await writer.drain()

    return handle


async def _until_parked(run: Running) -> None:
    """Until the gateway's loop-lag sampler waits out an idle spell (its samples then stay)."""
    lag = run.gateway.loop_lag
    if lag.parked:
        return
    parked = asyncio.Event()

    def watch(event: Event) -> None:
        if isinstance(event, LoopLagSampled) and lag.parked:
            parked.set()

    run.gateway.bus.subscribe(watch)
    await parked.wait()


def _metric(run: Running, reason: str) -> float:
    return run.gateway.metrics.value("cpr_gateway_rejected_total", reason=reason)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, ServerTls]:
    """The dev CA and a listener certificate it signed."""
    pki = ensure_dev_pki(tmp_path / "tls", servers=("gateway",))
    return pki.ca_cert, ServerTls(pki.cert("gateway"), pki.key("gateway"))


def _config(port: int, tls: ServerTls | None, **limits: Any) -> GatewayConfig:
    """One legacy backend at ``port``; generous timeouts unless ``limits`` say otherwise."""
    config = gateway_config(port, listen_tls=tls, read_timeout=30.0)
    base = replace(config.limits, handshake_timeout=30.0, first_byte_timeout=30.0)
    return replace(config, limits=replace(base, **limits))


@asynccontextmanager
async def _tls_client(
    run: Running, ca_cert: Path, host: str = "127.0.0.1"
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A TLS connection, handshaken, from loopback address ``host``."""
    reader, writer = await asyncio.open_connection(
        run.client.host,
        run.client.port,
        ssl=client_context(ca_cert),
        server_hostname="localhost",
        local_addr=(host, 0),
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _tls_exchange(run: Running, ca_cert: Path, record: bytes, host: str) -> bytes:
    async with _tls_client(run, ca_cert, host) as (reader, writer):
        writer.write(record)
        return await read_all(reader)


async def _closed_before_tls(run: Running) -> bool:
    """Whether a new TCP connection is closed by the server without a byte sent by either
    side: a TLS server waits for the ClientHello, so only admission closes it so."""
    async with raw_connection(run.client) as (reader, _writer):
        return await read_all(reader) == b""


async def test_over_max_connections_is_closed_before_tls(ca: tuple[Path, ServerTls]) -> None:
    """With every slot held by a handshaken connection, the next is closed at accept, before
    its ClientHello, and counted over_capacity; a freed slot admits again."""
    ca_cert, tls = ca
    async with (
        backend_server(canned()) as port,
        running(_config(port, tls, max_connections=1)) as run,
    ):
        opened = next_event(run.gateway, ConnectionOpened)
        async with _tls_client(run, ca_cert):
            await opened.wait()
            assert await _closed_before_tls(run)
            assert _metric(run, "over_capacity") == 1
        assert await _tls_exchange(run, ca_cert, LOOKUP.encode(), "127.0.0.1") == LOOKUP_ANSWER


async def test_a_tls_connection_is_named_by_the_address_it_was_accepted_from(
    ca: tuple[Path, ServerTls],
) -> None:
    """The listener knows the client's address from the accept: its connection's events and
    its request's log fields name that ``host:port``, from a second loopback address too."""
    ca_cert, tls = ca
    async with backend_server(canned()) as port, running(_config(port, tls)) as run:
        seen: list[Event] = []
        run.gateway.bus.subscribe(seen.append)
        async with _tls_client(run, ca_cert, OTHER_HOST) as (reader, writer):
            client = writer.get_extra_info("sockname")
            writer.write(LOOKUP.encode())
            assert await read_all(reader) == LOOKUP_ANSWER
        await asyncio.sleep(0)  # the request's own events come in the loop's next pass
        named = {type(e).__name__: e.peer for e in seen if hasattr(e, "peer")}
        assert named["ConnectionOpened"] == f"{OTHER_HOST}:{client[1]}"
        assert named["RequestCompleted"] == f"{OTHER_HOST}:{client[1]}"


async def test_over_the_per_address_limit_is_closed_before_tls(
    ca: tuple[Path, ServerTls],
) -> None:
    """One address at its limit is refused at accept (per_address); another address is
    served meanwhile, and the first is admitted again once its connection is gone."""
    ca_cert, tls = ca

    def config(port: int) -> GatewayConfig:
        return _config(port, tls, max_connections_per_address=1)

    async with backend_server(canned()) as port, running(config(port)) as run:
        opened = next_event(run.gateway, ConnectionOpened)
        async with _tls_client(run, ca_cert):
            await opened.wait()
            assert await _closed_before_tls(run)
            assert _metric(run, "per_address") == 1
            assert _metric(run, "over_capacity") == 0
            assert await _tls_exchange(run, ca_cert, LOOKUP.encode(), OTHER_HOST) == LOOKUP_ANSWER
        assert await _tls_exchange(run, ca_cert, LOGON.encode(), "127.0.0.1") == LOGON_ANSWER


async def test_behind_a_balancer_the_named_client_is_what_is_counted() -> None:
    """From a trusted balancer every connection comes from its address: the per-address limit
    counts the client each PROXY header names instead."""

    def config(port: int) -> GatewayConfig:
        behind = _config(port, None, max_connections_per_address=1)
        return replace(behind, listen=replace(behind.listen, proxy_protocol=LOOPBACK))

    async with backend_server(canned()) as port, running(config(port)) as run:
        opened = next_event(run.gateway, ConnectionOpened)
        async with raw_connection(run.client) as (reader, writer):
            writer.write(header_for(CLIENT))  # CLIENT holds its one slot
            await writer.drain()
            await opened.wait()
            again = Address(CLIENT.ip, CLIENT.port + 1)
            assert await exchange_after(run.client.port, header_for(again), LOOKUP.encode()) == b""
            assert _metric(run, "per_address") == 1
            answer = await exchange_after(run.client.port, header_for(STRANGER), LOOKUP.encode())
            assert answer == LOOKUP_ANSWER
            writer.write(LOOKUP.encode())
            assert await read_all(reader) == LOOKUP_ANSWER


async def test_a_stalled_handshake_is_cut_by_the_handshake_timeout(
    ca: tuple[Path, ServerTls],
) -> None:
    """A client that connects and never says hello is closed at the handshake timeout (the
    read timeout is far away) and counted handshake_timeout."""
    _ca_cert, tls = ca
    async with running(_config(0, tls, handshake_timeout=0.2)) as run:
        async with raw_connection(run.client) as (reader, writer):
            writer.write(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
            assert await read_all(reader) == b""
        rejected = next_event(run.gateway, RequestRejected)
        if _metric(run, "handshake_timeout") == 0:
            await rejected.wait()  # the close reached the client before the count was made
        assert _metric(run, "handshake_timeout") == 1


async def test_while_the_loop_runs_late_new_connections_are_refused_at_accept(
    ca: tuple[Path, ServerTls],
) -> None:
    """With the loop's sustained lag above a tenth of the handshake timeout (a fault injected
    as lag samples), a new TLS connection is closed at accept and counted overloaded; once
    the lag is back down, connections are let in again."""
    ca_cert, tls = ca
    async with (
        backend_server(canned()) as port,
        running(_config(port, tls, handshake_timeout=3.0)) as run,
    ):
        lag = run.gateway.loop_lag
        await _until_parked(run)  # no client yet: the sampler parks, and forgets its samples
        for _ in range(8):
            lag.record(3600.0)  # an hour late, as the parked sampler keeps it
        assert await _closed_before_tls(run)
        assert _metric(run, "overloaded") == 1
        for _ in range(8):
            lag.record(0.0)
        assert await _tls_exchange(run, ca_cert, LOOKUP.encode(), "127.0.0.1") == LOOKUP_ANSWER
        assert _metric(run, "overloaded") == 1


async def test_an_address_handshakes_in_its_turns_while_others_go_ahead(
    ca: tuple[Path, ServerTls],
) -> None:
    """With one handshake at a time per address, a connection that stalls before its
    ClientHello holds its address's turn: that address's next TLS client is through only
    once the stalled one is cut, while another address's lookup is answered meanwhile."""
    ca_cert, tls = ca

    def config(port: int) -> GatewayConfig:
        return _config(port, tls, handshake_timeout=1.0, handshakes_per_address=1)

    async with backend_server(canned()) as port, running(config(port)) as run:
        order: list[str] = []
        async with raw_connection(run.client) as (stalled, _writer):

            async def stalled_is_cut() -> None:
                assert await read_all(stalled) == b""
                order.append("stalled cut")

            async def same_address() -> None:
                async with _tls_client(run, ca_cert, "127.0.0.1"):
                    order.append("same address through")

            cut = asyncio.create_task(stalled_is_cut())
            await asyncio.sleep(0.1)  # the stalled connection holds its turn first
            waiting = asyncio.create_task(same_address())
            assert await _tls_exchange(run, ca_cert, LOOKUP.encode(), OTHER_HOST) == LOOKUP_ANSWER
            assert order == []  # the other address did not wait for either
            await asyncio.gather(cut, waiting)
        assert order == ["stalled cut", "same address through"]


@pytest.mark.parametrize("tls_on", [True, False], ids=["tls", "plain"])
async def test_a_client_that_never_sends_is_cut_as_idle(
    ca: tuple[Path, ServerTls], tls_on: bool
) -> None:
    """After the handshake, a connection that sends nothing is closed at the first-byte
    timeout (the read timeout is far away), counted idle, and its slot freed."""
    ca_cert, tls = ca

    def config(port: int) -> GatewayConfig:
        listen_tls = tls if tls_on else None
        return _config(port, listen_tls, first_byte_timeout=0.2, max_connections=1)

    async with backend_server(canned()) as port, running(config(port)) as run:
        client = _tls_client(run, ca_cert) if tls_on else raw_connection(run.client)
        async with client as (reader, _writer):
            assert await read_all(reader) == b""
        assert _metric(run, "idle") == 1
        assert _metric(run, "timeout") == 0
        if tls_on:
            answer = await _tls_exchange(run, ca_cert, LOOKUP.encode(), "127.0.0.1")
        else:
            answer = await exchange(run.client, LOOKUP.encode())
        assert answer == LOOKUP_ANSWER


async def test_a_client_that_started_its_record_has_the_whole_read_timeout() -> None:
    """Bytes before the first-byte deadline mean the client is not idle: a record left
    unfinished is cut at the read timeout, as a timeout."""
    config = _config(0, None, first_byte_timeout=0.1, read_timeout=0.4)
    async with running(config) as run, raw_connection(run.client) as (reader, writer):
        writer.write(LOOKUP.encode()[:12])
        await writer.drain()
        assert await read_all(reader) == b""
        rejected = next_event(run.gateway, RequestRejected)
        if _metric(run, "timeout") == 0:
            await rejected.wait()
        assert _metric(run, "timeout") == 1
        assert _metric(run, "idle") == 0


async def test_beyond_max_in_flight_a_request_is_answered_08_at_once() -> None:
    """With max_in_flight requests in a backend, the next lookup and logon get their error
    answers with FEJLNR 08, byte for byte, without reaching the backend; counted."""
    arrived, release = asyncio.Event(), asyncio.Event()
    received: list[bytes] = []

    def config(port: int) -> GatewayConfig:
        return _config(port, None, max_in_flight=1)

    async with (
        backend_server(_held(arrived, release, received)) as port,
        running(config(port)) as run,
    ):
        first = asyncio.create_task(exchange(run.client, LOOKUP.encode()))
        await arrived.wait()
        assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_REFUSED
        assert await exchange(run.client, LOGON.encode()) == LOGON_REFUSED
        assert _metric(run, "max_in_flight") == 2
        release.set()
        assert await first == LOOKUP_ANSWER
        assert received == [LOOKUP.encode()]  # the first alone reached the backend
        assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER  # room again


async def test_other_clients_are_served_while_one_address_floods(
    ca: tuple[Path, ServerTls],
) -> None:
    """One address opening far more TLS connections than its share (left idle) takes no
    slot beyond its own; another address's lookups are all answered."""
    ca_cert, tls = ca

    def config(port: int) -> GatewayConfig:
        return _config(port, tls, max_connections=8, max_connections_per_address=4)

    async with backend_server(canned()) as port, running(config(port)) as run:
        async with AsyncExitStack() as flood:
            for _ in range(4):
                await flood.enter_async_context(_tls_client(run, ca_cert))
            for _ in range(12):
                assert await _closed_before_tls(run)
            assert _metric(run, "per_address") == 12
            answers = [
                await _tls_exchange(run, ca_cert, LOOKUP.encode(), OTHER_HOST) for _ in range(8)
            ]
            assert answers == [LOOKUP_ANSWER] * 8
        assert _metric(run, "over_capacity") == 0


def _server_side_nodelay(server_port: int, client: tuple[str, int]) -> int | None:
    """TCP_NODELAY of the gateway's socket for ``client`` (this process's own descriptors:
    the gateway runs in it), or None when no such socket is open."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(int(name)))
            with sock:
                if sock.type != socket.SOCK_STREAM or sock.family != socket.AF_INET:
                    continue
                if sock.getsockname()[1] == server_port and sock.getpeername() == client:
                    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    return None


async def test_a_burst_queued_in_the_kernel_is_accepted_and_answered_whole(
    ca: tuple[Path, ServerTls],
) -> None:
    """Connections that arrive while the loop is busy wait in the kernel's accept queue; the
    listener takes as many as are queued at its next wake-up (and any that came meanwhile
    at the one after), and every one is answered."""
    ca_cert, tls = ca
    async with backend_server(canned()) as port, running(_config(port, tls)) as run:
        # Blocking connects from the loop's own thread: the loop cannot accept meanwhile,
        # so all of them are queued at once before the listener's next wake-up.
        queued = [socket.create_connection((run.client.host, run.client.port)) for _ in range(6)]

        async def lookup(sock: socket.socket) -> bytes:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=client_context(ca_cert), server_hostname="localhost"
            )
            writer.write(LOOKUP.encode())
            try:
                return await read_all(reader)
            finally:
                writer.close()

        answers = await asyncio.gather(*(lookup(sock) for sock in queued))
        assert answers == [LOOKUP_ANSWER] * 6


async def test_an_admitted_tls_connection_sends_small_writes_at_once(
    ca: tuple[Path, ServerTls],
) -> None:
    """The sockets the listener accepts itself get TCP_NODELAY, as create_server's do: a
    handshake's and an answer's small writes must not wait for the client's delayed ACK."""
    ca_cert, tls = ca
    async with (
        backend_server(canned()) as port,
        running(_config(port, tls)) as run,
        _tls_client(run, ca_cert) as (_reader, writer),
    ):
        client = writer.get_extra_info("sockname")
        assert _server_side_nodelay(run.client.port, client) == 1


async def test_at_shutdown_connections_still_at_their_door_are_closed_and_their_slots_freed(
    ca: tuple[Path, ServerTls],
) -> None:
    """A connection in its handshake and one waiting for its address's turn are closed when
    the gateway shuts down, not left to their handshake timeout, and hold no slot after."""
    _ca_cert, tls = ca

    def config(port: int) -> GatewayConfig:
        return _config(port, tls, handshake_timeout=30.0, handshakes_per_address=1)

    async with backend_server(canned()) as port, running(config(port)) as run:
        listener = run.gateway._listener  # the slots have no public face but the limits
        assert listener is not None
        async with (
            raw_connection(run.client) as (in_handshake, _w1),
            raw_connection(run.client) as (waiting, _w2),
        ):
            for _ in range(100):  # both accepted: one holds the turn, one waits for it
                if len(listener.slots) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(listener.slots) == 2
            async with asyncio.timeout(5.0):  # far below the handshake timeout
                await run.gateway.aclose()  # (safe to call again as `running` exits)
                assert await read_all(in_handshake) == b""
                assert await read_all(waiting) == b""
        assert len(listener.slots) == 0
