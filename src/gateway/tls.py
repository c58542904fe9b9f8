"""TLS contexts for both sides of the gateway and the emulator.

Certificates come from the operator (or, in development, from :mod:`cpr_devtools.pki`).
The client port accepts TLS 1.2 at least, with forward-secret AEAD suites only for TLS 1.2
(TLS 1.3's suites are all of that kind and OpenSSL picks among them itself); a backend hop
can present a client certificate (mutual TLS) as the gateway's identity.
"""

from __future__ import annotations

import asyncio.sslproto
import operator
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Read buffer per TLS connection. CPython's asyncio allocates ``SSLProtocol.max_size``
#: (256 KiB in 3.11) for every TLS connection and keeps it resident; no CPR Direkte message
#: exceeds 2,908 bytes, so 32 KiB is ample, and 2,000 client connections plus their backend
#: connections cost tens of megabytes instead of about a gigabyte (docs/benchmarks.md, P6).
TLS_READ_BUFFER = 32 * 1024

#: ``listen.tls.min_version`` values (gateway.config.schema.TLS_VERSIONS), lowest first;
#: anything older is refused at load (TLS 1.0 and 1.1 are deprecated by RFC 8996).
MIN_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
#: ``listen.tls.min_version`` when not given.
DEFAULT_MIN_VERSION = "TLSv1.2"
#: ``listen.tls.ciphers`` when not given: TLS 1.2 suites with ephemeral ECDH key exchange
#: (forward secrecy) and an AEAD cipher; no CBC, RSA key exchange, SHA-1 MACs or 3DES.
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class DirectObject(ssl.SSLObject):
    """A connection's TLS object whose per-record methods are the C object's own.

    ``ssl.SSLObject`` wraps CPython's C object, and each of its methods is a Python
    function that only makes the C call. The event loop's TLS transport calls them for
    every handshake step, record read, write and shutdown: about twenty-five Python calls
    per lookup over both hops. Bound on the instance (whose ``__dict__`` is looked in
    before the class), the C object's methods are called directly, with the same results
    and errors; they take their arguments by position only, as the transports pass them
    (see :data:`_DIRECT`). A subclass that overrides one of them keeps its own.
    """

    #: SSLObject's methods that this class binds directly (those it does not override),
    #: and the getter of the C object's methods they only call, in the same order.
    _bound: tuple[str, ...] = ()
    _direct: Callable[[Any], tuple[Any, ...]] = staticmethod(lambda inner: ())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _bind(cls)

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> DirectObject:
        connection: DirectObject = super()._create(*args, **kwargs)  # type: ignore[misc]
        # CPython's C object, as ssl.SSLObject keeps it (3.7 on); were it not there, the
        # object would keep SSLObject's own methods: slower, not wrong.
        inner = getattr(connection, "_sslobj", None)
        if inner is not None:
            connection.__dict__.update(zip(cls._bound, cls._direct(inner), strict=True))
        return connection


#: SSLObject's methods that only call the C object's (of the same name but ``unwrap``),
#: among those the transports call. Not ``getpeercert``: callers name its argument
#: (``binary_form=True``), which the C method takes only by position; and ``read``'s length
#: has no default in C (the transports always pass it).
_DIRECT = (
    ("read", "read"),
    ("write", "write"),
    ("pending", "pending"),
    ("do_handshake", "do_handshake"),
    ("unwrap", "shutdown"),
    ("cipher", "cipher"),
    ("compression", "compression"),
)


def _bind(cls: type[DirectObject]) -> None:
    """Which of :data:`_DIRECT` ``cls`` binds (those it does not override), and one getter
    for all their C methods (one call per connection, not one per method)."""
    pairs = [(name, c) for name, c in _DIRECT if getattr(cls, name) is getattr(ssl.SSLObject, name)]
    cls._bound = tuple(name for name, _c in pairs)
    names = tuple(c for _name, c in pairs)
    if len(names) > 1:
        cls._direct = staticmethod(operator.attrgetter(*names))
    else:  # attrgetter of one name does not return a tuple, and of none is an error
        cls._direct = staticmethod(lambda inner: tuple(getattr(inner, n) for n in names))


_bind(DirectObject)


class DirectContext(ssl.SSLContext):
    """A context whose connections are :class:`DirectObject`, and which encodes the server
    name it is given once rather than through the IDNA codec (Python) per connection."""

    sslobject_class = DirectObject
    _name: str | bytes | None = None
    _encoded: str | None = None

    def _encode_hostname(self, hostname: str | bytes | None) -> str | None:
        if hostname is None:
            return None
        if hostname != self._name:
            self._encoded = super()._encode_hostname(hostname)  # type: ignore[misc]
            self._name = hostname
        return self._encoded


def bound_tls_buffers() -> None:
    """Apply :data:`TLS_READ_BUFFER` to every asyncio TLS connection made from now on."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def server_context(
    cert: Path,
    key: Path,
    *,
    min_version: str = DEFAULT_MIN_VERSION,
    ciphers: str = DEFAULT_CIPHERS,
    client_ca: Path | None = None,
    session_tickets: int | None = None,
) -> ssl.SSLContext:
    """A server-side context: ``cert``/``key`` presented, at least ``min_version``, TLS 1.2
    suites from ``ciphers``; with ``client_ca``, clients must present a certificate it signed;
    ``session_tickets`` TLS 1.3 tickets after each full handshake (None: OpenSSL's 2).

    Raises OSError or ssl.SSLError for files that cannot be loaded, ValueError for a
    ``min_version`` or ``ciphers`` that allow nothing.
    """
    # What ssl.create_default_context(Purpose.CLIENT_AUTH) makes, but of our class and
    # without honouring SSLKEYLOGFILE (as client_context: no connection's secrets in a file).
    context = DirectContext(ssl.PROTOCOL_TLS_SERVER)
    harden(context, min_version, ciphers)
    context.load_cert_chain(cert, key)
    if session_tickets is not None:
        context.num_tickets = session_tickets
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def harden(context: ssl.SSLContext, min_version: str, ciphers: str) -> None:
    """Set the lowest protocol version and the TLS 1.2 suites; ValueError names a bad one."""
    version = MIN_VERSIONS.get(min_version)
    if version is None:
        raise ValueError(f"min_version {min_version!r} is not one of {', '.join(MIN_VERSIONS)}")
    context.minimum_version = version
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        raise ValueError(f"ciphers {ciphers!r} select no cipher suite") from None


def client_context(
    ca: Path | None,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    kind: type[ssl.SSLContext] = DirectContext,
) -> ssl.SSLContext:
    """A client context verifying against ``ca`` (system trust store when None), presenting
    ``cert``/``key`` as its own certificate when given (mutual TLS); an instance of ``kind``
    (gateway.backends.tls_resumption's context offers sessions).

    What ``ssl.create_default_context`` makes, but for the class (and SSLKEYLOGFILE, which
    a gateway does not honour: it would write every connection's secrets to a file).
    """
    context = kind(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    if ca is not None:
        context.load_verify_locations(cafile=str(ca))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context
