"""Spare connections to a CPR Direkte server (``spare_connections``), against a real TLS server
on loopback that records, per connection, when it was accepted and when (if ever) a request
came on it: the server's view is the evidence of what was opened ahead, used or left."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway_harness import (
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    canned,
    gateway_config,
    raw_connection,
    read_all,
    read_request,
    running,
    until,
)

from cpr_devtools.pki import DevPki, ensure_dev_pki
from gateway.backends import LegacyBackend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config.schema import ClientTls
from gateway.tls import server_context


@dataclass
class Seen:
    """What the server saw: per connection, when it was accepted and when its request came
    (``time.monotonic()``: the loop's own clock may count whole milliseconds)."""

    accepted: list[float] = field(default_factory=list)
    requested: dict[int, float] = field(default_factory=dict)
    unused: list[int] = field(default_factory=list)
    #: Requests that came this long after their connection's accept are not answered: the
    #: connection is closed instead (a server that gave up on an idle connection).
    drop_after: float | None = None
    #: A connection without a request this long is closed (the server's first-byte timeout).
    idle_timeout: float | None = None


@contextlib.asynccontextmanager
async def recording_server(pki: DevPki, seen: Seen) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(seen.accepted)
        seen.accepted.append(time.monotonic())
        try:
            async with asyncio.timeout(seen.idle_timeout):
                await read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            seen.unused.append(number)
            writer.close()
            return
        seen.requested[number] = waited = time.monotonic()
        waited -= seen.accepted[number]
        if seen.drop_after is None or waited <= seen.drop_after:
            writer.write(LOOKUP_ANSWER)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        writer.close()

    context = server_context(pki.cert("emulator"), pki.key("emulator"))
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


def backend(pki: DevPki, port: int, spares: int = 1, max_age: float = 5.0) -> LegacyBackend:
    tls = ClientTls(pki.ca_cert, "localhost")
    config = LegacyBackendConfig(
        "mainframe", "127.0.0.1", port, tls, spare_connections=spares, spare_max_age=max_age
    )
    return LegacyBackend.from_config(config)


async def lookup(legacy: LegacyBackend) -> float:
    """One lookup, answered as the server answers; returns when it was asked."""
    asked = time.monotonic()
    assert await legacy.call(LOOKUP, LOOKUP.encode(), deadline=2.0) == LOOKUP_ANSWER
    return asked


async def test_a_request_goes_on_a_connection_opened_before_it(tmp_path: Path) -> None:
    """The first request finds no spare (traffic has not shown it would use one); the second,
    soon after, has one opened behind it; the third goes on that one, which the server
    accepted before the third was asked."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen()
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: len(seen.accepted) == 3, "a spare opened")
        third = await lookup(legacy)
        await until(lambda: len(seen.accepted) == 4, "the spare replaced")
        await legacy.aclose()
        await until(lambda: seen.unused == [3], "the last spare closed unused")
    assert sorted(seen.requested) == [0, 1, 2]
    assert seen.accepted[2] < third < seen.requested[2]


async def test_requests_further_apart_than_the_age_get_no_spares(tmp_path: Path) -> None:
    """Sparse traffic would see each spare expire unused: none is opened, one connection per
    request as without spares."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen()
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port, max_age=0.1)
        for _ in range(3):
            await lookup(legacy)
            await asyncio.sleep(0.15)
        await legacy.aclose()
    assert len(seen.accepted) == 3 and seen.unused == []


async def test_a_spare_unused_for_its_age_is_closed_and_not_replaced(tmp_path: Path) -> None:
    """When traffic stops, the spare left is closed after ``spare_max_age`` without a request,
    and no other is opened in its place."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen()
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port, max_age=0.3)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: len(seen.accepted) == 3, "a spare opened")
        await until(lambda: seen.unused == [2], "the spare closed at its age")
        await asyncio.sleep(0.4)  # more than an age: nothing else is opened meanwhile
        assert len(seen.accepted) == 3
        await lookup(legacy)  # after the pause: a connection of its own
        await legacy.aclose()
    assert sorted(seen.requested) == [0, 1, 3]


async def test_two_spares_serve_two_requests_at_once(tmp_path: Path) -> None:
    """``spare_connections: 2``: two requests arriving together each find one ready."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen()
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port, spares=2)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: len(seen.accepted) == 4, "two spares opened")
        asked = time.monotonic()
        await asyncio.gather(lookup(legacy), lookup(legacy))
        await legacy.aclose()
    assert sorted(seen.requested)[:4] == [0, 1, 2, 3]
    assert all(seen.accepted[n] < asked for n in (2, 3))


async def test_a_spare_the_server_dropped_gives_way_to_a_new_connection(tmp_path: Path) -> None:
    """A server that gave up on the idle spare (it closes it when the request comes, with
    nothing written) costs the client nothing: the request goes again on a new connection
    and is answered."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen(drop_after=0.2)
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: len(seen.accepted) == 3, "a spare opened")
        await asyncio.sleep(0.3)
        await lookup(legacy)
        await legacy.aclose()
    assert 2 in seen.requested  # sent on the spare, which the server dropped unanswered
    assert legacy.spares is not None and legacy.spares["stale"] == 1
    assert seen.requested[2] - seen.accepted[2] > 0.2
    assert any(n > 2 and seen.requested[n] - seen.accepted[n] < 0.2 for n in seen.requested)


async def test_a_spare_the_server_closed_while_idle_is_not_used(tmp_path: Path) -> None:
    """A spare whose server closed it (an idle timeout, a restart) is seen closed when taken
    and dropped; the request opens its own connection and is answered."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen(idle_timeout=0.1)
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: seen.unused == [2], "the spare closed by the server")
        await asyncio.sleep(0.05)  # its close reaches the backend
        third = await lookup(legacy)
        await legacy.aclose()
    assert 2 not in seen.requested
    assert seen.accepted[3] > third  # a connection of its own


async def test_a_spare_whose_handshake_never_ends_is_given_up_at_its_age(tmp_path: Path) -> None:
    """A server that accepts the spare's TCP connection but never answers its TLS handshake
    holds nothing for long: the spare is given up after ``spare_max_age``, not left open."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    context = server_context(pki.cert("emulator"), pki.key("emulator"))
    accepted: list[float] = []
    given_up: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        if len(accepted) > 2:  # the spare: no handshake, ever; wait for the client to go
            await reader.read()
            given_up.append(time.monotonic())
            writer.close()
            return
        await writer.start_tls(context)
        await read_request(reader)
        writer.write(LOOKUP_ANSWER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        legacy = backend(pki, server.sockets[0].getsockname()[1], max_age=0.3)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: len(accepted) == 3, "a spare connecting")
        await until(lambda: len(given_up) == 1, "the spare given up")
        await legacy.aclose()
    assert 0.25 < given_up[0] - accepted[2] < 3.0


async def test_each_backends_spares_are_counted_for_the_metrics(tmp_path: Path) -> None:
    """What became of the spares is on /metrics, read from the backend when scraped: requests
    that went on one and that found none, and the spare left at shutdown not counted as
    expired (it was closed, not aged)."""
    async with backend_server(canned()) as port:
        config = gateway_config(port)
        mainframe = config.backends["mainframe"]
        assert isinstance(mainframe, LegacyBackendConfig)
        mainframe = replace(mainframe, spare_connections=1)
        config = replace(config, backends={"mainframe": mainframe})
        async with running(config) as stack:
            for _ in range(4):
                async with raw_connection(stack.client) as (reader, writer):
                    writer.write(LOOKUP.encode())
                    assert await read_all(reader) == LOOKUP_ANSWER
                await asyncio.sleep(0.05)  # time for the spare behind it to be ready
            metrics = stack.gateway.metrics

            def spares(outcome: str) -> float:
                name = "cpr_gateway_backend_spares_total"
                return metrics.value(name, backend="mainframe", outcome=outcome)

            # The first two found none (the second showed that requests come often enough);
            # the third and fourth each went on the one opened behind the one before.
            assert [spares(o) for o in ("missed", "used", "expired", "stale", "failed")] == [
                2, 2, 0, 0, 0
            ]  # fmt: skip


async def test_a_spare_unused_for_its_age_counts_as_expired(tmp_path: Path) -> None:
    """The backend's own counts: a request that found none, and the spare closed at its age."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    seen = Seen()
    async with recording_server(pki, seen) as port:
        legacy = backend(pki, port, max_age=0.2)
        await lookup(legacy)
        await lookup(legacy)
        await until(lambda: seen.unused == [2], "the spare closed at its age")
        await legacy.aclose()
    assert legacy.spares == {"missed": 2, "expired": 1}
