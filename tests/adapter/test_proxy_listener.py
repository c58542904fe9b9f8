"""The client listener behind a load balancer: a trusted source's PROXY v2 header names the
client everywhere; an untrusted source cannot claim an address; a bad header is a clean
close, a log line and a count."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import structlog
from gateway_harness import (
    LOGON,
    LOOKUP,
    LOOKUP_ANSWER,
    Running,
    backend_server,
    canned,
    free_port,
    gateway_config,
    next_event,
    raw_connection,
    read_all,
    running,
)
from proxy_harness import (
    CLIENT,
    ELSEWHERE,
    LOOPBACK,
    exchange_after,
    header_for,
    proxied_canned,
    tls_exchange_after,
)

from cpr_devtools.client import exchange
from cpr_devtools.pki import ensure_dev_pki
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec.proxy_protocol import Address, ProxyHeader
from gateway.comparison import Shadow
from gateway.config.schema import (
    BUCKETS,
    GatewayConfig,
    Match,
    ProxyProtocol,
    Route,
    ServerTls,
)
from gateway.model import Operation
from gateway.observe.events import Event, RequestCompleted, ShadowCompleted
from gateway.observe.logs import configure_logging
from gateway.tls import client_context


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logs captured in memory; structlog's defaults are restored afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    structlog.reset_defaults()


def _lines(stream: io.StringIO, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == event]


def behind(config: GatewayConfig, trusted: ProxyProtocol = LOOPBACK) -> GatewayConfig:
    """``config`` with ``listen.proxy_protocol`` trusting ``trusted``."""
    return replace(config, listen=replace(config.listen, proxy_protocol=trusted))


def peers_of(run: Running) -> list[str]:
    """The ``peer`` of every request the gateway completes from now on, as they come."""
    peers: list[str] = []

    def watch(event: Event) -> None:
        if isinstance(event, RequestCompleted):
            peers.append(event.peer)

    run.gateway.bus.subscribe(watch)
    return peers


async def test_the_named_client_is_the_peer_in_events_and_logs(log_output: io.StringIO) -> None:
    """A trusted source's header claiming 192.0.2.7: the request is served and its log line
    and event name that client, not the balancer's loopback address."""
    async with backend_server(canned()) as port, running(behind(gateway_config(port))) as run:
        peers = peers_of(run)
        answer = await exchange_after(run.client.port, header_for(CLIENT), LOOKUP.encode())
        assert answer == LOOKUP_ANSWER
    assert peers == ["192.0.2.7:51234"]
    (line,) = _lines(log_output, "request")
    assert line["peer"] == "192.0.2.7:51234"


async def test_behind_tls_the_header_comes_in_clear_and_nothing_after_it_is_lost(
    tmp_path: Path,
) -> None:
    """Over TLS the header precedes the handshake: the ClientHello in the same segment, and
    the record in the same segment as the client's Finished, both reach TLS whole."""
    pki = ensure_dev_pki(tmp_path, servers=("gateway",))
    tls = ServerTls(pki.cert("gateway"), pki.key("gateway"))
    async with (
        backend_server(canned()) as port,
        running(behind(gateway_config(port, listen_tls=tls))) as run,
    ):
        peers = peers_of(run)
        listener, record, ca = run.client.port, LOOKUP.encode(), pki.ca_cert
        assert await tls_exchange_after(listener, header_for(CLIENT), record, ca) == LOOKUP_ANSWER
        with pytest.raises(ConnectionResetError):  # a trusted source must send its header
            await tls_exchange_after(listener, b"", record, ca)
        rejected = run.gateway.metrics.value("cpr_gateway_rejected_total", reason="proxy_header")
        assert rejected == 1
    assert peers == ["192.0.2.7:51234"]


async def test_behind_tls_an_untrusted_source_is_served_as_itself(tmp_path: Path) -> None:
    """With the setting on, a TLS client outside the trusted networks is served as on any
    listener (its ClientHello is the first thing read), and a header from it breaks only
    its own handshake."""
    pki = ensure_dev_pki(tmp_path, servers=("gateway",))
    tls = ServerTls(pki.cert("gateway"), pki.key("gateway"))
    async with (
        backend_server(canned()) as port,
        running(behind(gateway_config(port, listen_tls=tls), ELSEWHERE)) as run,
    ):
        peers = peers_of(run)
        endpoint = replace(run.client, ssl=client_context(pki.ca_cert), server_hostname="localhost")
        for _ in range(3):
            assert await exchange(endpoint, LOOKUP.encode()) == LOOKUP_ANSWER
        with pytest.raises((ConnectionResetError, ssl.SSLError)):
            await tls_exchange_after(
                run.client.port, header_for(CLIENT), LOOKUP.encode(), pki.ca_cert
            )
    assert len(peers) == 3
    assert all(peer.startswith("127.0.0.1:") for peer in peers)


async def test_local_header_keeps_the_socket_s_own_peer() -> None:
    """LOCAL (the balancer's own connection, e.g. a health check) names nobody: the socket's
    peer, loopback, is the client."""
    async with backend_server(canned()) as port, running(behind(gateway_config(port))) as run:
        peers = peers_of(run)
        answer = await exchange_after(run.client.port, header_for(None), LOOKUP.encode())
        assert answer == LOOKUP_ANSWER
    (peer,) = peers
    assert peer.startswith("127.0.0.1:")


async def test_an_untrusted_source_cannot_claim_an_address() -> None:
    """From outside the trusted networks a header is just bad bytes: no answer, counted as
    a framing reject (not as a proxy header), nothing reaches the backend; a plain request
    from it is served as its own."""
    received: list[bytes] = []
    async with (
        backend_server(canned(received)) as port,
        running(behind(gateway_config(port), ELSEWHERE)) as run,
    ):
        peers = peers_of(run)
        spoofed = await exchange_after(run.client.port, header_for(CLIENT), LOOKUP.encode())
        assert spoofed == b""
        assert received == []
        metrics = run.gateway.metrics
        assert metrics.value("cpr_gateway_rejected_total", reason="proxy_header") == 0
        assert metrics.value("cpr_gateway_rejected_total", reason="not_printable") == 1
        assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
    (peer,) = peers
    assert peer.startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("sent", "detail"),
    [
        (LOOKUP.encode(), "no PROXY v2 signature"),
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 51234 5000\r\n" + LOOKUP.encode(), "version 1 (text)"),
        (header_for(CLIENT)[:20], "closed after 20 bytes of a PROXY header"),
        (b"", "closed before a PROXY header"),
    ],
    ids=["no-header", "v1-header", "truncated", "nothing"],
)
async def test_a_trusted_source_without_a_valid_header_is_closed_and_counted(
    sent: bytes, detail: str, log_output: io.StringIO
) -> None:
    """Garbage, a text header, half a header or nothing, then EOF: closed unanswered, the
    backend untouched, counted as ``proxy_header`` and logged with what was wrong."""
    received: list[bytes] = []
    async with (
        backend_server(canned(received)) as port,
        running(behind(gateway_config(port))) as run,
    ):
        async with raw_connection(run.client) as (reader, writer):
            writer.write(sent)
            writer.write_eof()
            assert await read_all(reader) == b""
        rejected = run.gateway.metrics.value("cpr_gateway_rejected_total", reason="proxy_header")
        assert rejected == 1
    assert received == []
    (line,) = _lines(log_output, "rejected")
    assert line["reason"] == "proxy_header"
    assert detail in str(line["detail"])
    assert str(line["peer"]).startswith("127.0.0.1:")


async def test_a_trusted_source_that_sends_nothing_is_cut_at_the_read_timeout() -> None:
    """A silent connection from the balancer holds nothing past the read timeout."""
    config = behind(gateway_config(0, read_timeout=0.3))
    async with running(config) as run, raw_connection(run.client) as (reader, _writer):
        assert await read_all(reader) == b""
        assert run.gateway.metrics.value("cpr_gateway_rejected_total", reason="proxy_header") == 1


async def test_shutdown_closes_connections_still_at_the_door() -> None:
    """A trusted connection that has not sent its header does not hold up a shutdown: the
    gateway stops accepting, closes it, and its client sees the connection end."""
    config = behind(gateway_config(0, read_timeout=30.0))
    async with running(config) as run, raw_connection(run.client) as (reader, _writer):
        await run.gateway.aclose()
        assert not run.gateway.ready()
        assert await read_all(reader) == b""


async def test_the_client_s_address_reaches_every_backend_call(tmp_path: Path) -> None:
    """The logon, its fan-out to the shadow side, the lookup and its shadow copy each open
    their backend connection with a header naming the client."""
    primary_headers: list[ProxyHeader] = []
    shadow_headers: list[ProxyHeader] = []
    async with (
        backend_server(proxied_canned(primary_headers)) as primary,
        backend_server(proxied_canned(shadow_headers)) as shadow,
    ):
        base = gateway_config(primary)
        backends = {
            "mainframe": LegacyBackendConfig(
                "mainframe", "127.0.0.1", primary, None, proxy_protocol=True
            ),
            "persons-v2": LegacyBackendConfig(
                "persons-v2", "127.0.0.1", shadow, None, proxy_protocol=True
            ),
        }
        lookups = Route(
            "lookups",
            Match(frozenset({Operation.LOOKUP})),
            "mainframe",
            2.0,
            (Shadow("persons-v2", BUCKETS, 2.0),),
        )
        config = behind(replace(base, backends=backends, routes=(lookups, *base.routes)))
        async with running(config) as run:
            shadowed = next_event(run.gateway, ShadowCompleted)
            header = header_for(CLIENT)
            assert len(await exchange_after(run.client.port, header, LOGON.encode())) == 24
            assert await exchange_after(run.client.port, header, LOOKUP.encode()) == LOOKUP_ANSWER
            async with asyncio.timeout(10):
                await shadowed.wait()
    named = Address(CLIENT.ip, 0)  # the gateway passes the address on, not the port
    assert [h.source for h in primary_headers] == [named, named]
    assert [h.source for h in shadow_headers] == [named, named]


def _haproxy_cfg(front: int, gateway: int) -> str:
    """HAProxy in TCP mode in front of the gateway, as the fleet runs it: ``send-proxy-v2``."""
    return "\n".join(
        [
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 10s",
            "    timeout server 10s",
            "frontend clients",
            f"    bind 127.0.0.1:{front}",
            "    default_backend gateways",
            "backend gateways",
            f"    server gateway 127.0.0.1:{gateway} send-proxy-v2",
            "",
        ]
    )


@asynccontextmanager
async def haproxy(config: Path, front: int) -> AsyncIterator[None]:
    """A real HAProxy for the block, once its front port accepts connections."""
    binary = shutil.which("haproxy")
    assert binary is not None, "haproxy is not installed (Debian package haproxy)"
    process = await asyncio.create_subprocess_exec(
        binary, "-db", "-f", str(config), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _reader, writer = await asyncio.open_connection("127.0.0.1", front)
                except OSError:
                    assert process.returncode is None, "haproxy stopped"
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield
    finally:
        process.terminate()
        await process.wait()


async def test_behind_a_real_haproxy_the_peer_is_the_client_s_own_socket(
    tmp_path: Path,
) -> None:
    """HAProxy's own v2 header reads as the client's address and port (the port of the
    client's socket, not of HAProxy's connection to the gateway)."""
    async with backend_server(canned()) as port, running(behind(gateway_config(port))) as run:
        peers = peers_of(run)
        front = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(_haproxy_cfg(front, run.client.port), encoding="utf-8")
        async with haproxy(config, front):
            reader, writer = await asyncio.open_connection("127.0.0.1", front)
            own_port = writer.get_extra_info("sockname")[1]
            writer.write(LOOKUP.encode())
            assert await read_all(reader) == LOOKUP_ANSWER
            writer.close()
    assert peers == [f"127.0.0.1:{own_port}"]
