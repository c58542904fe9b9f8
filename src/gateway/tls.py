"""TLS contexts for both sides of the gateway and the emulator.

Certificates come from the operator (or, in development, from :mod:`gateway.pki`).
"""

from __future__ import annotations

import asyncio.sslproto
import ssl
from pathlib import Path

#: Read buffer per TLS connection. CPython's asyncio allocates ``SSLProtocol.max_size``
#: (256 KiB in 3.11) for every TLS connection and keeps it resident; no CPR Direkte message
#: exceeds 2,908 bytes, so 32 KiB is ample, and 2,000 client connections plus their backend
#: connections cost tens of megabytes instead of about a gigabyte (docs/benchmarks.md, P6).
TLS_READ_BUFFER = 32 * 1024


def bound_tls_buffers() -> None:
    """Apply :data:`TLS_READ_BUFFER` to every asyncio TLS connection made from now on."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context for the CPR Direkte port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def client_context(ca: Path | None) -> ssl.SSLContext:
    """A client context verifying against ``ca`` (system trust store when None)."""
    return ssl.create_default_context(cafile=str(ca) if ca else None)


class ResumingClientContext(ssl.SSLContext):
    """A client context that resumes the TLS session of an earlier connection.

    CPR Direkte opens a connection per request, so towards the mainframe the gateway
    would otherwise run a full handshake every time: the server signs, the gateway
    verifies a certificate chain. Resuming (a TLS 1.3 ticket, or a TLS 1.2 session)
    skips both on each side, the mainframe's included. A server that declines simply
    gets a full handshake. asyncio and uvloop both create each connection's TLS object
    with :meth:`wrap_bio`, which is where the remembered session is offered.
    """

    def __init__(self, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> None:
        super().__init__()
        self._session: ssl.SSLSession | None = None

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """As :meth:`ssl.SSLContext.wrap_bio`, offering the remembered session by default."""
        offered = session if session is not None else self._session
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, offered)

    def remember(self, tls: ssl.SSLObject | None) -> None:
        """Offer ``tls``'s session from now on (call it once the answer has been read:
        a TLS 1.3 server sends its tickets after the handshake)."""
        session = tls.session if tls is not None else None
        if session is not None and (session.has_ticket or session.id):
            self._session = session


def resuming_client_context(ca: Path | None) -> ResumingClientContext:
    """:func:`client_context`, resuming sessions (:class:`ResumingClientContext`)."""
    context = ResumingClientContext(ssl.PROTOCOL_TLS_CLIENT)
    # What ssl.create_default_context() does for a client: PROTOCOL_TLS_CLIENT already
    # requires a verified certificate and a matching host name.
    if ca is not None:
        context.load_verify_locations(cafile=str(ca))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context
