"""Isolation of a request's primary from the other sides (issue 18, item 1).

Each test injects one fault on a side that is not the request's primary (a real socket that
takes the request and never answers, a server that went away, a real grpc.aio server
stopped) and pins what the client gets: the primary's answer, not after the faulty side. The
faults are real servers on loopback; no backend is mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import grpc
import grpc.aio
from gateway_harness import (
    LOGON,
    LOGON_ANSWER,
    LOOKUP,
    LOOKUP_ANSWER,
    TOKEN,
    Handler,
    backend_server,
    canned,
    gateway_config,
    held,
    read_request,
    running,
)

from cpr_devtools.client import exchange
from gateway.backends.grpc_config import GrpcBackendConfig, grpc_target
from gateway.backends.grpc_wire import REPEAT_KEY
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import LogonAnswer
from gateway.comparison import Shadow
from gateway.config.breaker import Breaker
from gateway.config.schema import GatewayConfig, Match, Route, Sessions
from gateway.cprv1.pb.cpr.v1 import auth_pb2
from gateway.model import FejlNr, Operation
from gateway.observe.events import BreakerChanged, Event, SessionEvent, ShadowCompleted

#: A hang fails the test; a normal run takes well under a second.
PATIENCE_S = 30
#: The other side's deadline: far longer than any answer the tests wait for, so an answer
#: that came while the other side still held its call did not wait for it.
LONG_DEADLINE_S = 60.0
DEFAULT_BREAKER = Breaker()


def _two_sides(primary: int, other: LegacyBackendConfig | GrpcBackendConfig) -> GatewayConfig:
    """Logons and lookups to ``mainframe`` at ``primary``; lookups shadowed to ``other``, so
    logons are repeated there too (a logon itself is not shadowed)."""
    config = gateway_config(primary, deadline=LONG_DEADLINE_S)
    shadow = Shadow(other.name, 10_000, LONG_DEADLINE_S)
    logons = Match(operations=frozenset({Operation.LOGON, Operation.CHANGE_PASSWORD}))
    routes = (
        Route("logons", logons, "mainframe", LONG_DEADLINE_S),
        Route("all", Match(), "mainframe", LONG_DEADLINE_S, shadows=(shadow,)),
    )
    backends = {**config.backends, other.name: other}
    return replace(config, backends=backends, routes=routes, sessions=Sessions())


def _legacy(port: int, breaker: Breaker = DEFAULT_BREAKER) -> LegacyBackendConfig:
    return LegacyBackendConfig("other", "127.0.0.1", port, None, breaker=breaker)


def _events(gateway: Any, kind: type[Event]) -> list[Any]:
    seen: list[Any] = []
    gateway.bus.subscribe(lambda event: seen.append(event) if isinstance(event, kind) else None)
    return seen


async def test_a_logon_is_answered_while_the_other_side_holds_its_repeat() -> None:
    """The other side takes the repeated logon and never answers: the client's 00 comes from
    the primary while that repeat is still waiting (sessions.fan_out_timeout, not its deadline)."""
    arrived, release = asyncio.Event(), asyncio.Event()
    async with (
        backend_server(canned()) as primary,
        backend_server(held(arrived, release)) as port,
        running(_two_sides(primary, _legacy(port))) as run,
    ):
        async with asyncio.timeout(PATIENCE_S):
            answer = await exchange(run.client, LOGON.encode())
        assert answer == LOGON_ANSWER
        await arrived.wait()  # the repeat reached the side, which answers only on release
        late = run.gateway.metrics.value(
            "cpr_gateway_session_events_total", kind="side_logon_skipped", backend="other"
        )
        async with asyncio.timeout(PATIENCE_S):  # the next logon skips the hung side
            assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
        skipped = run.gateway.metrics.value(
            "cpr_gateway_session_events_total", kind="side_logon_skipped", backend="other"
        )
        assert skipped == late + 1
        release.set()


async def test_a_lookup_is_answered_while_its_shadow_copy_is_held() -> None:
    """Shadows are off the critical path: the copy waits on a side that does not answer, the
    client has the primary's answer already."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def holds_lookups(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if len(request) != len(LOGON.encode()):
            arrived.set()
            await release.wait()
        writer.write(LOGON_ANSWER if len(request) == len(LOGON.encode()) else LOOKUP_ANSWER)
        await writer.drain()

    async with (
        backend_server(canned()) as primary,
        backend_server(holds_lookups) as port,
        running(_two_sides(primary, _legacy(port))) as run,
    ):
        async with asyncio.timeout(PATIENCE_S):
            assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
            await _until(lambda: _has_token(run.gateway))
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
            await arrived.wait()  # the copy reached the side, and is held there
        assert not release.is_set()
        release.set()


async def test_a_side_that_went_away_opens_its_breaker_and_gets_no_more_copies() -> None:
    """The shadow side answered the logon, then stopped: its copies fail (unavailable) until
    ``failures`` in a row open its breaker; later copies are not sent at all (reason
    ``open``), and every client answer is the primary's throughout."""
    breaker = Breaker(failures=3, open_for=LONG_DEADLINE_S)
    async with (
        backend_server(canned()) as primary,
        _side(canned()) as side,
        running(_two_sides(primary, _legacy(_port(side), breaker))) as run,
    ):
        changes, copies = _events(run.gateway, BreakerChanged), _copies(run.gateway)
        assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
        await _until(lambda: _has_token(run.gateway))
        assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
        await _until(lambda: bool(copies))
        side.close()
        await side.wait_closed()
        await _lookups_until(run, lambda: any(c.reason == "open" for c in copies))
        assert [c.state for c in changes] == ["open"]
        reasons = [c.reason for c in copies]
        assert reasons[: breaker.failures + 1] == ["", *["unavailable"] * breaker.failures]
        assert set(reasons[breaker.failures + 1 :]) == {"open"}
        gauge = run.gateway.metrics.value("cpr_gateway_backend_breaker_open", backend="other")
        assert gauge == 1


async def test_a_side_back_on_its_port_is_closed_again_by_one_trial_call() -> None:
    """Open, then ``open_for`` later one copy is the trial; the side, back on its port,
    answers it, and its breaker closes: copies are compared again."""
    breaker = Breaker(failures=2, open_for=0.2)
    async with backend_server(canned()) as primary, _side(canned()) as side:
        port = _port(side)
        async with running(_two_sides(primary, _legacy(port, breaker))) as run:
            changes, copies = _events(run.gateway, BreakerChanged), _copies(run.gateway)
            assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
            await _until(lambda: _has_token(run.gateway))
            side.close()
            await side.wait_closed()
            await _lookups_until(run, lambda: [c.state for c in changes] == ["open"])
            async with _side(canned(), port):
                await _lookups_until(run, lambda: any(c.state == "closed" for c in changes))
                await _lookups_until(run, lambda: copies[-1].outcome == "match")
            assert [c.state for c in changes][-2:] == ["half_open", "closed"]
            gauge = run.gateway.metrics.value("cpr_gateway_backend_breaker_open", backend="other")
            assert gauge == 0


@asynccontextmanager
async def _side(handler: Handler, port: int = 0) -> AsyncIterator[asyncio.Server]:
    """A fake backend the test may stop mid-way (``close()``), on ``port`` (0: a free one)."""

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _has_token(gateway: Any) -> bool:
    """Whether the one session holds the other side's token (its repeat is in)."""
    session = gateway.sessions.live(TOKEN)
    return session is not None and session.token_for("other") is not None


def _copies(gateway: Any) -> list[ShadowCompleted]:
    """Every shadow copy's outcome, from now on."""
    seen: list[ShadowCompleted] = []
    gateway.bus.subscribe(lambda e: seen.append(e) if isinstance(e, ShadowCompleted) else None)
    return seen


async def _until(done: Any) -> None:
    async with asyncio.timeout(PATIENCE_S):
        while not done():  # noqa: ASYNC110 (state other tasks change; no event to wait on)
            await asyncio.sleep(0.01)


async def _lookups_until(run: Any, done: Any) -> None:
    """Look up (every answer the primary's 00) until ``done()``."""
    async with asyncio.timeout(PATIENCE_S):
        while not done():
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
            await asyncio.sleep(0.01)


# -- a real grpc.aio server as the other side ----------------------------------------------------


@asynccontextmanager
async def _auth_server(seen: list[tuple[tuple[str, str], ...]]) -> AsyncIterator[int]:
    """A grpc.aio server whose AuthService.Logon answers a session and keeps each call's
    metadata; stopped when the block ends."""

    async def logon(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        metadata = tuple((k, str(v)) for k, v in context.invocation_metadata() or ())
        seen.append(metadata)
        return auth_pb2.LogonResponse(session="Gr9cTok1").SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        "cpr.v1.AuthService", {"Logon": grpc.unary_unary_rpc_method_handler(logon)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def _grpc(port: int) -> GrpcBackendConfig:
    return GrpcBackendConfig("other", grpc_target(f"127.0.0.1:{port}"), None)


async def test_a_repeated_logon_on_a_grpc_side_says_it_is_a_repeat() -> None:
    """The gateway's repeat carries ``x-cpr-repeat: 1`` (the services then never count its
    refusal towards the user's lock); no client's own call carries it."""
    seen: list[tuple[tuple[str, str], ...]] = []
    async with (
        backend_server(canned()) as primary,
        _auth_server(seen) as port,
        running(_two_sides(primary, _grpc(port))) as run,
    ):
        assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
        await _until(lambda: bool(seen))
    [metadata] = seen
    assert (REPEAT_KEY, "1") in metadata


async def test_a_stopped_grpc_side_costs_the_logon_nothing() -> None:
    """A real grpc.aio server, stopped: the repeat fails at once (unavailable), the client's
    logon is the primary's 00, and the side is left out of the next logons for a while."""
    seen: list[tuple[tuple[str, str], ...]] = []
    async with _auth_server(seen) as port:
        pass  # started and stopped: nothing listens on its port any more
    async with (
        backend_server(canned()) as primary,
        running(_two_sides(primary, _grpc(port))) as run,
    ):
        failed = _events(run.gateway, SessionEvent)
        async with asyncio.timeout(PATIENCE_S):
            assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
            await _until(lambda: any(e.kind == "side_logon_failed" for e in failed))
            assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
        kinds = [e.kind for e in failed if e.backend == "other"]
        assert kinds == ["side_logon_failed", "side_logon_skipped"]
        errors = run.gateway.metrics.value(
            "cpr_gateway_backend_errors_total", backend="other", kind="unavailable"
        )
        assert errors == 1


# -- the legacy side: a refused repeat is not made again with the same password ---------------

LOGON_01 = LogonAnswer(LOGON.customer, LOGON.user, FejlNr.BAD_CREDENTIALS).encode()


async def test_a_repeat_refused_with_01_is_not_made_again_with_the_same_password() -> None:
    """The other side refuses the user's password (it differs there): one repeat per
    password reaches it, however often the client logs on, so it counts one failure, not one
    per logon; another password is tried once too."""
    received: list[bytes] = []

    async def refuses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(LOGON_01)
        await writer.drain()

    async with (
        backend_server(canned()) as primary,
        backend_server(refuses) as port,
        running(_two_sides(primary, _legacy(port))) as run,
    ):
        held_back = _events(run.gateway, SessionEvent)
        for _ in range(3):
            assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
            await _until(lambda: len(received) == 1)
        assert await exchange(run.client, replace(LOGON, password="Other#12").encode()) == (
            LOGON_ANSWER
        )
        await _until(lambda: len(received) == 2)
        kinds = [e.kind for e in held_back if e.backend == "other"]
        assert kinds.count("side_logon_held") == 2
        assert kinds.count("side_logon_failed") == 2
