"""The legacy backend on real loopback servers: exact bytes back, every failure a BackendError."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gateway_harness import (
    LOGON,
    LOGON_ANSWER,
    LOOKUP,
    LOOKUP_ANSWER,
    Handler,
    answering,
    backend_server,
    hangs_up,
    read_request,
    refusing_port,
    silent,
)

from cpr_devtools.pki import ensure_dev_pki
from gateway.backends import LegacyBackend, build_backend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import LogonRequest, LookupAnswer, LookupRequest
from gateway.config.kinds import BACKEND_KINDS, load_attribute
from gateway.config.schema import ClientTls
from gateway.errors import (
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from gateway.model import Family, FejlNr
from gateway.tls import server_context


def legacy(port: int, tls: ClientTls | None = None, most: int = 64) -> LegacyBackend:
    config = LegacyBackendConfig("mainframe", "127.0.0.1", port, tls, max_connections=most)
    return LegacyBackend.from_config(config)


@pytest.mark.parametrize(("request_", "answer"), [(LOGON, LOGON_ANSWER), (LOOKUP, LOOKUP_ANSWER)])
async def test_answer_bytes_come_back_unchanged(request_: LogonRequest, answer: bytes) -> None:
    """The backend gets the client's exact bytes and returns the server's exact bytes."""
    received: list[bytes] = []
    raw = request_.encode()
    async with backend_server(answering(answer, received)) as port:
        assert await legacy(port).call(request_, raw, deadline=2.0) == answer
    assert received == [raw]


async def test_request_bytes_are_not_re_encoded() -> None:
    """A space-padded customer number reaches the backend exactly as the client sent it."""
    raw = b"PRIV,  1206Tk3nAbCdDEMO0001000101601234"
    received: list[bytes] = []
    error_answer = LookupAnswer.for_request(LOOKUP, FejlNr.NEW_LOGON).encode(Family.PRIV)
    async with backend_server(answering(error_answer, received)) as port:
        await legacy(port).call(LOOKUP, raw, deadline=2.0)
    assert received == [raw]


async def test_over_tls_verified_against_the_ca(tmp_path: Path) -> None:
    """With tls.ca and server_name the backend verifies the server and relays its bytes."""
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    context = server_context(pki.cert("emulator"), pki.key("emulator"))
    async with backend_server(answering(LOOKUP_ANSWER), context) as port:
        backend = legacy(port, ClientTls(pki.ca_cert, "localhost"))
        assert await backend.call(LOOKUP, LOOKUP.encode(), deadline=2.0) == LOOKUP_ANSWER


async def test_untrusted_certificate_is_unavailable(tmp_path: Path) -> None:
    """A server certificate not signed by the configured CA is a failed backend, not a crash."""
    theirs = ensure_dev_pki(tmp_path / "theirs", servers=("emulator",))
    ours = ensure_dev_pki(tmp_path / "ours", servers=())
    context = server_context(theirs.cert("emulator"), theirs.key("emulator"))
    async with backend_server(answering(LOOKUP_ANSWER), context) as port:
        backend = legacy(port, ClientTls(ours.ca_cert, "localhost"))
        with pytest.raises(BackendUnavailable, match="mainframe: TLS: CERTIFICATE_VERIFY_FAILED"):
            await backend.call(LOOKUP, LOOKUP.encode(), deadline=2.0)


async def test_unreachable_port_is_unavailable() -> None:
    """Nobody listening: BackendUnavailable naming the backend, no OSError leaks."""
    refused = pytest.raises(BackendUnavailable, match=r"^mainframe: ConnectionRefusedError")
    with refusing_port() as port, refused:
        await legacy(port).call(LOGON, LOGON.encode(), deadline=2.0)


async def test_silent_backend_times_out_within_the_deadline() -> None:
    """A backend that never answers costs at most the deadline, then BackendTimeout."""
    async with backend_server(silent) as port:
        with pytest.raises(BackendTimeout, match=r"mainframe: no answer within 0\.2s"):
            await legacy(port).call(LOOKUP, LOOKUP.encode(), deadline=0.2)


async def test_requests_past_max_connections_wait_for_a_free_one() -> None:
    """With every connection busy the next request waits (it is not sent), then goes out
    once one is free; a request still waiting at its deadline gets BackendTimeout."""
    arrived, release = asyncio.Event(), asyncio.Event()
    received: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        received.append(await read_request(reader))
        arrived.set()
        await release.wait()
        writer.write(LOOKUP_ANSWER)
        await writer.drain()

    async with backend_server(handle) as port:
        backend = legacy(port, most=1)
        first = asyncio.create_task(backend.call(LOOKUP, LOOKUP.encode(), deadline=5.0))
        await arrived.wait()
        with pytest.raises(BackendTimeout, match=r"no free connection of 1 within 0\.2s"):
            await backend.call(LOOKUP, LOOKUP.encode(), deadline=0.2)
        waiting = asyncio.create_task(backend.call(LOOKUP, LOOKUP.encode(), deadline=5.0))
        await asyncio.sleep(0.1)
        assert connections == 1  # neither the timed-out nor the waiting one got through
        release.set()
        assert await first == LOOKUP_ANSWER
        assert await waiting == LOOKUP_ANSWER
    assert connections == 2 and len(received) == 2


@pytest.mark.parametrize(
    ("handler", "request_", "problem"),
    [
        (hangs_up, LOGON, "logon answer of 0 bytes, not 24"),
        (answering(LOGON_ANSWER[:20]), LOGON, "logon answer of 20 bytes, not 24"),
        (answering(LOGON_ANSWER + b" "), LOGON, "logon answer of 25 bytes, not 24"),
        (answering(b"GARBAGE GARBAGE GARBAGE!"), LOGON, "FEJLNR is not two digits"),
        (
            answering(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            LOOKUP,
            "lookup answer of 28 bytes has no header",
        ),
        (answering(LOOKUP_ANSWER[:100]), LOOKUP, "length field says 553, answer has 100 bytes"),
        (answering(LOOKUP_ANSWER + b"999"), LOOKUP, "length field says 553, answer has 556 bytes"),
        (answering(LOOKUP_ANSWER[:28] + b"x" * 3000), LOOKUP, "answer longer than 2908 bytes"),
    ],
    ids=[
        "eof",
        "short-logon",
        "long-logon",
        "garbage",
        "http",
        "truncated",
        "trailing",
        "oversize",
    ],
)
async def test_answers_that_break_the_wire_contract(
    handler: Handler, request_: LogonRequest | LookupRequest, problem: str
) -> None:
    """Early close, garbage, truncation and oversize answers become BackendProtocolError."""
    assert len(LOOKUP_ANSWER) == 553
    async with backend_server(handler) as port:
        with pytest.raises(BackendProtocolError, match=f"^mainframe: {problem}"):
            await legacy(port).call(request_, request_.encode(), deadline=2.0)


async def test_unreadable_ca_is_a_config_error(tmp_path: Path) -> None:
    """A missing CA file fails when the backend is built, naming the YAML path."""
    config = LegacyBackendConfig(
        "mainframe", "127.0.0.1", 5001, ClientTls(tmp_path / "no.crt", None)
    )
    with pytest.raises(ConfigError) as caught:
        build_backend(config)
    [problem] = caught.value.problems
    assert problem.startswith(f"backends.mainframe.tls.ca: cannot load {tmp_path / 'no.crt'}")


@pytest.mark.parametrize("kind", list(BACKEND_KINDS))
def test_every_configurable_kind_has_an_adapter(kind: str) -> None:
    """Each ``kind`` the config loader accepts names a parser and an adapter that both load."""
    assert callable(load_attribute(BACKEND_KINDS[kind].parser))
    assert callable(load_attribute(BACKEND_KINDS[kind].adapter))
