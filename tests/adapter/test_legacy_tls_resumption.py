"""TLS session resumption towards a CPR Direkte server, against real TLS servers on loopback.

What the server saw is the evidence: each test's server records, per connection, whether
its TLS session was resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gateway_harness import LOOKUP, LOOKUP_ANSWER, read_request

from cpr_devtools.pki import DevPki, ensure_dev_pki
from gateway.backends import LegacyBackend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config.schema import ClientTls
from gateway.errors import BackendUnavailable
from gateway.observe.events import Event, EventBus, TlsSession
from gateway.tls import server_context


@contextlib.asynccontextmanager
async def recording_server(
    context: ssl.SSLContext, resumed: list[bool], port: int = 0
) -> AsyncIterator[int]:
    """A TLS server answering one lookup per connection; ``resumed`` gets each connection's
    view of its session."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            resumed.append(writer.get_extra_info("ssl_object").session_reused)
            writer.write(LOOKUP_ANSWER)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


def emulator_context(pki: DevPki) -> ssl.SSLContext:
    return server_context(pki.cert("emulator"), pki.key("emulator"))


def backend(
    pki: DevPki, port: int, bus: EventBus | None = None, *, resuming: bool = True
) -> LegacyBackend:
    tls = ClientTls(pki.ca_cert, "localhost")
    config = LegacyBackendConfig("mainframe", "127.0.0.1", port, tls, tls_resumption=resuming)
    return LegacyBackend.from_config(config, bus)


async def lookups(legacy: LegacyBackend, count: int) -> None:
    for _ in range(count):
        assert await legacy.call(LOOKUP, LOOKUP.encode(), deadline=2.0) == LOOKUP_ANSWER


async def test_later_connections_resume_the_first_session(tmp_path: Path) -> None:
    """The first call's verified handshake gives a session; the next calls resume it, and the
    answers are the server's bytes as before."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    resumed: list[bool] = []
    async with recording_server(emulator_context(pki), resumed) as port:
        legacy = backend(pki, port)
        await lookups(legacy, 4)
    assert resumed == [False, True, True, True]
    assert legacy.handshakes == (3, 1)


async def test_without_tls_resumption_every_call_is_a_full_handshake(tmp_path: Path) -> None:
    """``tls_resumption: false``: every connection verifies the certificate again."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    resumed: list[bool] = []
    async with recording_server(emulator_context(pki), resumed) as port:
        await lookups(backend(pki, port, resuming=False), 3)
    assert resumed == [False, False, False]


async def test_a_refused_session_is_reported_and_not_offered_again(tmp_path: Path) -> None:
    """A server that no longer knows the session (restarted: new ticket keys) answers after a
    full handshake; the refusal is an event, and the next calls are not offered one (within
    the offer's lifetime), so they cost no session copy each."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    before: list[bool] = []
    async with recording_server(emulator_context(pki), before) as port:
        legacy = backend(pki, port, bus)
        await lookups(legacy, 2)
    after: list[bool] = []
    async with recording_server(emulator_context(pki), after, port):
        await lookups(legacy, 3)
    assert before == [False, True]
    assert after == [False, False, False]
    assert [e for e in events if isinstance(e, TlsSession)] == [
        TlsSession("mainframe", "stored"),  # the first server's, from the first call
        TlsSession("mainframe", "refused"),  # the restarted server did not know it
    ]
    assert legacy.handshakes == (1, 4)


async def test_a_failed_handshake_drops_the_stored_session(tmp_path: Path) -> None:
    """After a TLS failure the next connection does a full, verified handshake, so a stored
    session cannot outlive the server certificate that it was made with."""
    pki = ensure_dev_pki(tmp_path / "ours", servers=("emulator",))
    theirs = ensure_dev_pki(tmp_path / "theirs", servers=("emulator",))
    first: list[bool] = []
    async with recording_server(emulator_context(pki), first) as port:
        legacy = backend(pki, port)
        await lookups(legacy, 1)
    untrusted: list[bool] = []
    async with recording_server(emulator_context(theirs), untrusted, port):
        # Its tickets are not ours: a full handshake, whose certificate fails verification.
        with pytest.raises(BackendUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await lookups(legacy, 1)
    again: list[bool] = []
    async with recording_server(emulator_context(pki), again, port):
        await lookups(legacy, 2)
    assert (first, untrusted, again) == ([False], [], [False, True])
