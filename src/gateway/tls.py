"""TLS contexts for both sides of the gateway and the emulator.

Certificates come from the operator (or, in development, from :mod:`cpr_devtools.pki`).
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
