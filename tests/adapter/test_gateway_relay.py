"""Through the real gateway listener: byte-identical relay, 09 on backend failure, clean logs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import structlog
from gateway_harness import (
    LOGON,
    LOGON_ANSWER,
    LOOKUP,
    LOOKUP_ANSWER,
    PASSWORD,
    PNR,
    TOKEN,
    Handler,
    answering,
    backend_server,
    canned,
    free_port,
    gateway_config,
    hangs_up,
    refusing_port,
    running,
    silent,
)

from cpr_devtools.client import Endpoint, exchange
from cpr_devtools.pki import ensure_dev_pki
from gateway.codec import LogonAnswer, LookupAnswer, LookupRequest
from gateway.config.schema import ClientTls, Logging, RequestLines, ServerTls
from gateway.model import Family, FejlNr
from gateway.observe.logs import configure_logging
from gateway.tls import client_context, server_context

LOGON_09 = LogonAnswer("0001", "DEMO0001", FejlNr.NO_CONNECTION).encode()
LOOKUP_09 = LookupAnswer.for_request(LOOKUP, FejlNr.NO_CONNECTION).encode(Family.PRIV)


async def test_plaintext_relay_is_byte_identical_both_ways() -> None:
    """The backend gets the client's bytes and the client gets the backend's bytes, exactly."""
    received: list[bytes] = []
    async with (
        backend_server(canned(received)) as port,
        running(gateway_config(port)) as run,
    ):
        assert await exchange(run.client, LOGON.encode()) == LOGON_ANSWER
        assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
        value = partial(run.gateway.metrics.value, "cpr_gateway_requests_total")
        labels = {"route": "all", "backend": "mainframe", "fejlnr": "00"}
        assert value(operation="logon", **labels) == value(operation="lookup", **labels) == 1
    assert received == [LOGON.encode(), LOOKUP.encode()]


async def test_space_padded_customer_is_relayed_as_sent() -> None:
    """The gateway never re-encodes a request: an old client's "  12" reaches the backend."""
    raw = b"PRIV,  1206Tk3nAbCdDEMO0001000101601234"
    answer = LookupAnswer.for_request(LookupRequest.decode(raw), FejlNr.NEW_LOGON).encode(
        Family.PRIV
    )
    received: list[bytes] = []
    async with (
        backend_server(answering(answer, received)) as port,
        running(gateway_config(port)) as run,
    ):
        assert await exchange(run.client, raw) == answer
    assert received == [raw]


async def test_tls_on_both_sides(tmp_path: Path) -> None:
    """TLS client → TLS gateway → TLS backend verified against the CA: bytes still identical."""
    pki = ensure_dev_pki(tmp_path, servers=("gateway", "emulator"))
    backend_context = server_context(pki.cert("emulator"), pki.key("emulator"))
    config = partial(
        gateway_config,
        listen_tls=ServerTls(pki.cert("gateway"), pki.key("gateway")),
        backend_tls=ClientTls(pki.ca_cert, "localhost"),
    )
    async with (
        backend_server(canned(), backend_context) as port,
        running(config(port)) as run,
    ):
        client = Endpoint("127.0.0.1", run.client.port, client_context(pki.ca_cert), "localhost")
        assert await exchange(client, LOOKUP.encode()) == LOOKUP_ANSWER
        assert await exchange(client, LOGON.encode()) == LOGON_ANSWER


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (silent, "timeout"),
        (hangs_up, "protocol"),
        (answering(b"garbage " * 3), "protocol"),
        (answering(LOOKUP_ANSWER + b"x" * 3000), "protocol"),
        (None, "unavailable"),
    ],
    ids=["never-answers", "closes-early", "garbage", "oversize", "unreachable"],
)
async def test_backend_failure_answers_09(handler: Handler | None, kind: str) -> None:
    """Whatever goes wrong behind the gateway, the client gets a well-formed 09 answer."""

    async def check(port: int) -> None:
        async with running(gateway_config(port, deadline=0.3)) as run:
            assert await exchange(run.client, LOGON.encode()) == LOGON_09
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_09
            errors = run.gateway.metrics.value(
                "cpr_gateway_backend_errors_total", backend="mainframe", kind=kind
            )
            assert errors == 2
            requests = run.gateway.metrics.value(
                "cpr_gateway_requests_total",
                operation="lookup", route="all", backend="mainframe", fejlnr="09",
            )  # fmt: skip
            assert requests == 1

    if handler is None:
        with refusing_port() as port:
            await check(port)
        return
    async with backend_server(handler) as port:
        await check(port)


async def test_09_for_an_unknown_transaction_code_is_a_bare_header() -> None:
    """An error answer carries no records, so an unknown code still gets the 0028 header."""
    request = LookupRequest("ADRM", "0001", TOKEN, "DEMO0001", PNR)
    async with running(gateway_config(free_port())) as run:
        answer = await exchange(run.client, request.encode())
    assert answer == b"000106Tk3nAbCdDEMO0001090028"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logs captured in memory; structlog's defaults are restored afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    structlog.reset_defaults()


async def test_one_json_log_line_per_request_without_secrets(log_output: io.StringIO) -> None:
    """Each request logs one line with its labels and latency; no PNR, password or token."""
    async with backend_server(canned()) as port, running(gateway_config(port)) as run:
        await exchange(run.client, LOGON.encode())
        await exchange(run.client, LOOKUP.encode())
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [r["operation"] for r in requests] == ["logon", "lookup"]
    for line in requests:
        assert {k: line[k] for k in ("route", "backend", "fejlnr")} == {
            "route": "all",
            "backend": "mainframe",
            "fejlnr": "00",
        }
        assert line["latency_ms"] >= 0
        assert line["peer"].startswith("127.0.0.1:")
    text = log_output.getvalue()
    assert PNR not in text
    assert PASSWORD not in text
    assert TOKEN not in text


async def test_logging_requests_errors_keeps_only_failed_requests_lines(
    log_output: io.StringIO,
) -> None:
    """``logging.requests: errors``: an answered request logs no line, a request its backend
    failed (answered 09) still does."""
    quiet = Logging(RequestLines.ERRORS)
    async with (
        backend_server(canned()) as port,
        running(replace(gateway_config(port), logging=quiet)) as run,
    ):
        await exchange(run.client, LOOKUP.encode())
    with refusing_port() as port:
        async with running(replace(gateway_config(port), logging=quiet)) as run:
            await exchange(run.client, LOOKUP.encode())
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [(r["fejlnr"], r["level"]) for r in requests] == [("09", "warning")]
