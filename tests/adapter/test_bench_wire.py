"""The load generator's lookups against real loopback servers that answer well and badly.

Plaintext lookups run on loop callbacks (``PlainLookup``), TLS lookups on a
protocol; both must report the same outcomes for the same server behaviour.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from cpr_bench.wire import Dialer, Outcome, Target, exchange_once
from gateway.codec import LookupAnswer, LookupRequest
from gateway.codec.headers import MAX_ANSWER_LENGTH
from gateway.model import Family, FejlNr

REQUEST = LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", "0101601234")  # synthetic
RECORD = REQUEST.encode()
GOOD = LookupAnswer.for_request(REQUEST, FejlNr.OK).encode(Family.PRIV)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: libuv's clock ticks in milliseconds.
LOOP_CLOCK_RESOLUTION_S = 0.001


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[Target, list[bytes]]]:
    """A plaintext server on a free loopback port; yields its target and what it received."""
    received: list[bytes] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(len(RECORD)))
        await handler(reader, writer)

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Target("127.0.0.1", port, None), received
    finally:
        server.close()


async def answer_and_close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(GOOD[:100])  # in two writes: the client must read until EOF
    await writer.drain()
    writer.write(GOOD[100:])
    writer.close()


async def test_a_good_answer_read_to_eof_is_a_success() -> None:
    """The record arrives whole in one connection; the answer is collected until EOF."""
    async with serving(answer_and_close) as (target, received):
        outcome = await exchange_once(Dialer(target), RECORD, 5)
    assert outcome.error is None
    assert received == [RECORD]
    assert outcome.started <= outcome.connected <= outcome.done


async def test_the_callback_api_reports_each_lookup_once() -> None:
    """``Dialer.start`` calls back exactly once per lookup, with its own outcome."""
    outcomes: list[Outcome] = []
    async with serving(answer_and_close) as (target, received):
        dialer = Dialer(target)
        for _ in range(20):
            dialer.start(RECORD, 5, outcomes.append)
        for _ in range(500):
            if len(outcomes) == 20:
                break
            await asyncio.sleep(0.01)
    assert [outcome.error for outcome in outcomes] == [None] * 20
    assert received == [RECORD] * 20


async def test_a_refused_connection_is_an_error_not_an_exception() -> None:
    """Nobody listening: the outcome names the refusal."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        outcome = await exchange_once(Dialer(Target("127.0.0.1", port, None)), RECORD, 5)
    assert outcome.error == "ConnectionRefusedError"


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("close", "no answer"),
        ("refuse", "FEJLNR 07"),
        ("long", "length field does not match the answer"),
    ],
)
async def test_bad_answers_are_errors_of_their_kind(behaviour: str, expected: str) -> None:
    """Closed without an answer, a refusal, an answer longer than any legal one."""

    async def misbehave(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "refuse":
            writer.write(LookupAnswer.for_request(REQUEST, FejlNr.NEW_LOGON).encode(Family.PRIV))
        elif behaviour == "long":
            writer.write(GOOD + b" " * MAX_ANSWER_LENGTH)
        writer.close()

    async with serving(misbehave) as (target, _received):
        outcome = await exchange_once(Dialer(target), RECORD, 5)
    assert outcome.error == expected


async def test_a_server_that_never_answers_times_out() -> None:
    """No answer within the limit: a timeout, reported after the limit, the socket closed."""
    release = asyncio.Event()

    async def stall(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    async with serving(stall) as (target, _received):
        outcome = await exchange_once(Dialer(target), RECORD, 0.2)
        release.set()
    assert outcome.error == "timeout"
    # Not before the limit, to the loop clock's resolution: uvloop's timers run on libuv's
    # millisecond clock, read once per loop turn, so one can fire up to a millisecond before
    # perf_counter says it is due (seen once: 0.1998 s).
    assert outcome.done - outcome.started >= 0.2 - LOOP_CLOCK_RESOLUTION_S
