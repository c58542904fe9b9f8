"""TLS session resumption towards a CPR Direkte server: one session, offered to every connection.

A CPR Direkte exchange is one connection per request, so without resumption every call
pays a whole client handshake, certificate chain verification included. With it, the
server's session ticket from one verified handshake lets the next connections skip the
certificate (and the mainframe skips signing for them), which is most of the client
side's handshake (docs/benchmarks.md, "TLS session resumption towards the mainframe").
This is what HAProxy does by default (``ssl-reuse``): the last session, offered again.

The context offers its stored session to every connection it wraps, which is where
asyncio's and uvloop's TLS transports take one (``wrap_bio``); the backend hands back
each finished connection (:meth:`ResumingContext.keep`) and the context takes that
connection's session when it has none worth offering. A session is offered for
``max_age`` at most, so a changed server certificate is verified again within that
time. A server that refuses what is offered (single-use tickets, a restart, a rotated
ticket key) gets full handshakes for ``max_age`` before the next try, so that a server
that never resumes costs no session bookkeeping per call. The offer itself goes without
CPython's copy of the session where gateway.backends.session_handoff can do it (the copy
costs most of what resuming saves), and through CPython's setter elsewhere.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from typing import Any

from gateway.backends.session_handoff import SessionHandoff, load
from gateway.tls import DirectContext, DirectObject

#: How long one session is offered; the certificate is verified again at least this often.
SESSION_MAX_AGE_S = 300.0
#: What :meth:`ResumingContext.keep` tells: a full handshake's session is now offered, or
#: the server did not resume the one offered (gateway.observe.events.TlsSession).
STORED, REFUSED = "stored", "refused"


class OfferedObject(DirectObject):
    """A connection's TLS object that knows whether a stored session was offered to it.

    Its peer's certificate is there in DER only (``getpeercert(binary_form=True)``); as a
    dict it is None. uvloop's and asyncio's TLS transports decode it into a dict after every
    handshake, for ``get_extra_info("peercert")``, which nothing in the gateway reads: for
    the mainframe's certificate that was ~15 µs per call (docs/benchmarks.md, "In place,
    function by function"). OpenSSL verifies the certificate, host name included, during
    the handshake either way.
    """

    offered = False

    def getpeercert(self, binary_form: bool = False) -> Any:
        return super().getpeercert(True) if binary_form else None


class ResumingContext(DirectContext):
    """A client context that offers one stored TLS session to every connection it wraps."""

    sslobject_class = OfferedObject
    # SSLContext is made by __new__(protocol); :meth:`configure_offers` changes the first two.
    _max_age = SESSION_MAX_AGE_S
    _clock: Callable[[], float] = staticmethod(time.monotonic)
    _session: ssl.SSLSession | None = None
    _since = 0.0
    #: When the server last refused an offer: nothing is offered until ``max_age`` after it.
    _refused_at: float | None = None
    #: Connections handed back (:meth:`keep`) that resumed a session, and that did not.
    resumed = 0
    full = 0
    _use_handoff = True

    def configure_offers(
        self,
        max_age: float = SESSION_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        handoff: bool = True,
    ) -> None:
        """Offer sessions each for ``max_age`` seconds of ``clock``; without ``handoff``,
        always through CPython's setter (which copies the session)."""
        self._max_age = max_age
        self._clock = clock
        self._use_handoff = handoff

    @property
    def handoff(self) -> SessionHandoff | None:
        """How sessions are offered without a copy; None: through CPython's setter."""
        return _handoff() if self._use_handoff else None

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        handoff = self.handoff
        if session is not None or server_side:
            return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        session = self._offer(handoff)
        if handoff is None or session is None:
            wrapped = super().wrap_bio(incoming, outgoing, False, server_hostname, session)
            offered = session is not None
        else:
            wrapped = super().wrap_bio(incoming, outgoing, False, server_hostname)
            offered = handoff.offer(wrapped, session)
        if isinstance(wrapped, OfferedObject):
            wrapped.offered = offered
        return wrapped

    def keep(self, connection: object) -> str | None:
        """After a connection's exchange, when a TLS 1.3 server's ticket has arrived with the
        answer: store its session if none is and none was refused lately. Only a full
        handshake's session is stored: its certificate was verified now. Returns what
        happened worth telling: :data:`STORED`, :data:`REFUSED` (the connection was offered a
        session and the server did not resume it), or None."""
        if not isinstance(connection, OfferedObject):
            return None
        now = self._clock()
        if connection.session_reused:
            self.resumed += 1
            return None
        self.full += 1
        if connection.offered:
            self._session, self._refused_at = None, now
            return REFUSED
        refused_lately = self._refused_at is not None and now - self._refused_at < self._max_age
        if self._session is not None or refused_lately:
            return None
        session = connection.session  # read once per stored session, not per call
        if session is None:
            return None
        self._session, self._since = session, now
        return STORED

    def forget(self) -> None:
        """Offer nothing until a full handshake's session is stored again (after a TLS
        failure, which the stored session may have caused)."""
        self._session = None

    def _offer(self, handoff: SessionHandoff | None) -> ssl.SSLSession | None:
        session = self._session
        if session is None:
            return None
        if self._clock() - self._since >= self._max_age:
            self._session = None  # the certificate is due to be verified again
            return None
        if handoff is not None and not handoff.resumable(session):
            # A connection that offered it ended abruptly before its server's new tickets
            # replaced it, and OpenSSL marked it spent; the next full handshake brings one.
            self._session = None
            return None
        return session


@functools.cache
def _handoff() -> SessionHandoff | None:
    return load()
