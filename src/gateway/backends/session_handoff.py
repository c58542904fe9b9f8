"""Hand a stored TLS session to a new connection without CPython's copy of it.

CPython's ``SSLObject.session`` setter hands OpenSSL a copy of the session, made by
encoding it and decoding it again (``_ssl_session_dup``, a workaround for an OpenSSL
1.1.0 bug), and decoding parses the server's certificate with OpenSSL 3's decoders: most
of what resuming saves (docs/benchmarks.md, "TLS session resumption towards the
mainframe"). OpenSSL itself
needs no copy: ``SSL_set_session`` takes a reference, and a TLS 1.3 client replaces a
resumed session with a new one when its tickets arrive, leaving the offered one as it
was. So this module calls ``SSL_set_session`` itself, through ctypes, on the ``SSL`` and
``SSL_SESSION`` that CPython's objects wrap.

Reading those two pointers relies on the layout of CPython's ``_ssl`` objects, which is
not public API. It is used only where it is known (CPython 3.11, a release build with
the GIL, the object sizes of that version) and only after a check that the pointer read
from a fresh connection is one OpenSSL recognises as belonging to its context;
anywhere else :func:`load` returns None and sessions go through CPython's setter,
correct and slower. The libssl called is the one ``_ssl`` itself has loaded.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from pathlib import Path

#: (CPython minor version) → the sizes of ``_ssl._SSLSocket``, ``_ssl.SSLSession`` and
#: ``_ssl._SSLContext`` whose layouts the offsets below were read from (Modules/_ssl.c).
_KNOWN_LAYOUTS = {(3, 11): (96, 32, 96)}
#: After PyObject_HEAD (refcount, type): PySSLSocket {PyObject *Socket; SSL *ssl; ...},
#: PySSLSession {SSL_SESSION *session; ...}, PySSLContext {SSL_CTX *ctx; ...}.
_SSL_OFFSET = 24
_SESSION_OFFSET = 16
_CTX_OFFSET = 16


class SessionHandoff:
    """``SSL_set_session`` and ``SSL_SESSION_is_resumable`` on CPython's TLS objects."""

    def __init__(self, libssl: ctypes.CDLL) -> None:
        self._set = libssl.SSL_set_session
        self._set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._set.restype = ctypes.c_int
        self._resumable = libssl.SSL_SESSION_is_resumable
        self._resumable.argtypes = [ctypes.c_void_p]
        self._resumable.restype = ctypes.c_int
        self._ctx_of = libssl.SSL_get_SSL_CTX
        self._ctx_of.argtypes = [ctypes.c_void_p]
        self._ctx_of.restype = ctypes.c_void_p

    def offer(self, connection: ssl.SSLObject, session: ssl.SSLSession) -> bool:
        """Have ``connection`` (not yet in its handshake) offer ``session``."""
        ssl_ptr = _pointer(connection._sslobj, _SSL_OFFSET)  # type: ignore[attr-defined]
        return bool(self._set(ssl_ptr, _pointer(session, _SESSION_OFFSET)))

    def resumable(self, session: ssl.SSLSession) -> bool:
        """False once OpenSSL has marked the session not to be resumed (a connection using
        it ended without close_notify before the server's new tickets replaced it)."""
        return bool(self._resumable(_pointer(session, _SESSION_OFFSET)))

    def recognises(self, context: ssl.SSLContext) -> bool:
        """Whether a connection wrapped from ``context`` yields an ``SSL`` pointer that
        OpenSSL says belongs to ``context``'s ``SSL_CTX`` (the layout check at load)."""
        connection = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x")
        ssl_ptr = _pointer(connection._sslobj, _SSL_OFFSET)  # type: ignore[attr-defined]
        return bool(ssl_ptr) and self._ctx_of(ssl_ptr) == _pointer(context, _CTX_OFFSET)


def load() -> SessionHandoff | None:
    """The handoff where this interpreter's layout is known and checks out; else None."""
    import _ssl  # noqa: PLC0415  (the module whose objects are read)

    objects = (_ssl._SSLSocket, _ssl.SSLSession, _ssl._SSLContext)  # type: ignore[attr-defined]
    sizes = tuple(kind.__basicsize__ for kind in objects)
    known = _KNOWN_LAYOUTS.get(sys.version_info[:2])
    release_build = not hasattr(sys, "gettotalrefcount") and ctypes.sizeof(ctypes.c_void_p) == 8
    if sys.implementation.name != "cpython" or not release_build or sizes != known:
        return None
    path = _loaded_libssl()
    if path is None:
        return None
    libssl = ctypes.CDLL(str(path))
    version = libssl.OpenSSL_version_num
    version.restype = ctypes.c_ulong
    if version() != ssl.OPENSSL_VERSION_NUMBER:
        return None
    handoff = SessionHandoff(libssl)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return handoff if handoff.recognises(probe) else None


def _loaded_libssl() -> Path | None:
    """The libssl this process has mapped (the one ``_ssl`` links), from /proc/self/maps."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps.splitlines() if "/libssl.so" in line}
    return Path(paths.pop()) if len(paths) == 1 else None


def _pointer(obj: object, offset: int) -> int:
    """The pointer-sized field at ``offset`` in ``obj``'s C struct (CPython: id is its address)."""
    return ctypes.c_void_p.from_address(id(obj) + offset).value or 0
