"""limits.failed_logons through a real gateway: a customer guessed at from one address is
answered 01 by the gateway itself, without reaching the backend, counted and logged."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import structlog
from gateway_harness import LOGON, backend_server, gateway_config, read_request, running

from cpr_devtools.client import exchange
from gateway.codec import LogonAnswer
from gateway.config.schema import FailedLogons
from gateway.model import FejlNr
from gateway.observe.logs import configure_logging

LOGON_01 = LogonAnswer(LOGON.customer, LOGON.user, FejlNr.BAD_CREDENTIALS).encode()
LIMIT = FailedLogons(max=3, window=300.0)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logs captured in memory; structlog's defaults are restored afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    structlog.reset_defaults()


async def test_past_the_limit_logons_are_refused_without_asking_the_backend(
    log_output: io.StringIO,
) -> None:
    """Three refused logons of customer 0001 from this address: the next ones, of any user of
    that customer, are answered 01 at once and never reach the backend; another customer is
    asked as before. The refusal is counted and logged with customer, user and address, and
    never the password."""
    received: list[bytes] = []

    async def refuses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(LOGON_01)
        await writer.drain()

    async with backend_server(refuses) as port:
        config = gateway_config(port)
        config = replace(config, limits=replace(config.limits, failed_logons=LIMIT))
        async with running(config) as run:
            for _ in range(LIMIT.max):
                assert await exchange(run.client, LOGON.encode()) == LOGON_01
            assert len(received) == LIMIT.max
            other_user = replace(LOGON, user="DEMO0002")
            for logon in (LOGON, other_user):
                answer = await exchange(run.client, logon.encode())
                assert (
                    answer
                    == LogonAnswer(logon.customer, logon.user, FejlNr.BAD_CREDENTIALS).encode()
                )
            assert len(received) == LIMIT.max  # the backend was not asked
            refused = run.gateway.metrics.value("cpr_gateway_logons_refused_total")
            assert refused == 2
            other_customer = replace(LOGON, customer="0002")
            await exchange(run.client, other_customer.encode())
            assert len(received) == LIMIT.max + 1
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    refusals = [line for line in lines if line["event"] == "logon_refused"]
    assert [(r["customer"], r["user"], r["address"]) for r in refusals] == [
        ("1", "DEMO0001", "127.0.0.1"),
        ("1", "DEMO0002", "127.0.0.1"),
    ]
    assert LOGON.password not in log_output.getvalue()
