"""Through the real listener: what cannot be framed is closed unanswered, and hurts nobody else."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from gateway_harness import (
    LOGON,
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    canned,
    gateway_config,
    next_event,
    raw_connection,
    read_all,
    running,
)

from cpr_devtools.client import exchange
from gateway.observe.events import ConnectionOpened, RequestRejected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"HELLO WORLD", "no_comma"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not_printable"),
        (b"PRIV,\x00\x01\x02", "not_printable"),
        (LOOKUP.encode()[:20] + b"\n", "not_printable"),
        (LOOKUP.encode() + b"EXTRA", "too_long"),
        (LOGON.encode() + LOGON.encode(), "too_long"),
    ],
    ids=["text", "http", "control-bytes", "newline", "trailing-junk", "two-records"],
)
async def test_unframeable_input_is_closed_without_answer(data: bytes, reason: str) -> None:
    """Garbage and oversized input get no answer, never reach the backend, and are counted."""
    received: list[bytes] = []
    async with backend_server(canned(received)) as port, running(gateway_config(port)) as run:
        async with raw_connection(run.client) as (reader, writer):
            writer.write(data)
            assert await read_all(reader) == b""
        assert run.gateway.metrics.value("cpr_gateway_rejected_total", reason=reason) == 1
    assert received == []


async def test_truncated_record_then_close_is_incomplete() -> None:
    """A client that sends part of a record and closes its side gets no answer."""
    async with backend_server(canned()) as port, running(gateway_config(port)) as run:
        async with raw_connection(run.client) as (reader, writer):
            writer.write(LOOKUP.encode()[:30])
            writer.write_eof()
            assert await read_all(reader) == b""
        assert run.gateway.metrics.value("cpr_gateway_rejected_total", reason="incomplete") == 1


async def _drip(writer: asyncio.StreamWriter, data: bytes, pause_s: float) -> None:
    """Send ``data`` one byte at a time, until done or the server hangs up."""
    with contextlib.suppress(OSError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause_s)


async def test_drip_feeding_client_is_cut_at_the_read_timeout() -> None:
    """The read timeout bounds the whole record, so one byte at a time does not keep it open."""
    config = gateway_config(0, read_timeout=0.5)
    async with running(config) as run, raw_connection(run.client) as (reader, writer):
        async with asyncio.TaskGroup() as tasks:
            dripping = tasks.create_task(_drip(writer, LOOKUP.encode(), pause_s=0.2))
            assert await read_all(reader) == b""
            dripping.cancel()
        assert run.gateway.metrics.value("cpr_gateway_rejected_total", reason="timeout") == 1


async def test_stalled_client_does_not_delay_another() -> None:
    """While one client sits on a half record, another client's request is served."""
    async with backend_server(canned()) as port, running(gateway_config(port)) as run:
        async with raw_connection(run.client) as (stalled_reader, stalled):
            stalled.write(LOOKUP.encode()[:12])
            await stalled.drain()
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
            assert await read_all(stalled_reader) == b""
        metrics = run.gateway.metrics
        assert metrics.value("cpr_gateway_rejected_total", reason="timeout") == 1
        labels = {"operation": "lookup", "route": "all", "backend": "mainframe", "fejlnr": "00"}
        assert metrics.value("cpr_gateway_requests_total", **labels) == 1


async def test_connections_beyond_the_bound_are_closed_at_once() -> None:
    """Past max_connections a client is accepted and closed immediately, and counted."""
    config = gateway_config(0, max_connections=1, read_timeout=5.0)
    async with running(config) as run:
        opened = next_event(run.gateway, ConnectionOpened)
        async with raw_connection(run.client) as (first_reader, first):
            await opened.wait()  # the first connection now holds the only slot
            async with raw_connection(run.client) as (second_reader, _second):
                assert await read_all(second_reader) == b""
            over = run.gateway.metrics.value("cpr_gateway_rejected_total", reason="over_capacity")
            assert over == 1
            rejected = next_event(run.gateway, RequestRejected)
            first.write_eof()  # frees the slot: the first client gives up on its record
            assert await read_all(first_reader) == b""
            await rejected.wait()


async def test_every_reject_reason_is_exported_from_the_start() -> None:
    """Each reason shows at 0 before anything happens, so alerts can use rate() at once."""
    async with running(gateway_config(0)) as run:
        metrics = run.gateway.metrics
        for reason in ("no_comma", "not_printable", "too_long", "incomplete", "timeout"):
            assert (
                metrics.registry.get_sample_value("cpr_gateway_rejected_total", {"reason": reason})
                == 0
            )
        assert (
            metrics.registry.get_sample_value(
                "cpr_gateway_rejected_total", {"reason": "over_capacity"}
            )
            == 0
        )
