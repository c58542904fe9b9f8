"""The development CA: certificates that real TLS clients verify on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cpr_devtools.pki import ensure_dev_pki
from gateway.tls import client_context, server_context


async def test_dev_certificates_verify_over_real_tls(tmp_path: Path) -> None:
    """A client trusting only the dev CA completes a handshake with a dev server cert."""
    pki = ensure_dev_pki(tmp_path / "tls", servers=("gateway",))

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(4))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(
        echo, "127.0.0.1", 0, ssl=server_context(pki.cert("gateway"), pki.key("gateway"))
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(pki.ca_cert), server_hostname="localhost"
        )
        writer.write(b"PING")
        assert await reader.read() == b"PING"
        writer.close()


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    """Re-running keeps existing keys, so running clients keep trusting the CA."""
    first = ensure_dev_pki(tmp_path, servers=("emulator",))
    ca = first.ca_cert.read_bytes()
    cert = first.cert("emulator").read_bytes()
    second = ensure_dev_pki(tmp_path, servers=("emulator",))
    assert second.ca_cert.read_bytes() == ca
    assert second.cert("emulator").read_bytes() == cert
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0


def test_tls_read_buffers_are_bounded_once_a_gateway_configures_them() -> None:
    """Each TLS connection's read buffer is 32 KiB, ten times the largest CPR Direkte answer."""
    import asyncio.sslproto

    from gateway.codec import MAX_ANSWER_LENGTH
    from gateway.tls import TLS_READ_BUFFER, bound_tls_buffers

    bound_tls_buffers()
    assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER
    assert TLS_READ_BUFFER >= 10 * MAX_ANSWER_LENGTH
