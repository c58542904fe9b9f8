"""The client port's certificate and key, reloaded when their files change or on SIGHUP.

Certificates are renewed while the gateway runs (an ACME client, cert-manager, an operator's
copy). The listener keeps one :class:`ssl.SSLContext` for its whole life; a reload loads the
new pair *into that same context* (``load_cert_chain`` again), so every handshake from then
on presents the new certificate, connections already open keep theirs, and the listener
itself is never touched: nothing is dropped.

A new pair is tried on a scratch context first. Loading a key that does not match into the
live context would leave it without a certificate (OpenSSL drops the certificate whose key
failed), and every handshake would fail; so a bad pair (unreadable, not PEM, key and
certificate that do not match, a half-written file) is reported, counted and logged, and
the old pair stays in force. Both contexts load the same bytes, copied once into a private
temporary directory, so a file rewritten between the two loads cannot slip in untried.

Polling follows :mod:`gateway.config.watch`: a change is acted on once both files have stayed
the same for one more poll, so a renewal that writes the certificate and then the key is
loaded once, as a pair, when it has finished.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from pathlib import Path

from gateway.config.schema import ServerTls
from gateway.config.watch import Snapshot, snapshot
from gateway.errors import ConfigError
from gateway.observe.events import CertificatesReloaded, EventBus
from gateway.storage.files import write_private
from gateway.tls import server_context

#: What a poll compares: the certificate file's and the key file's snapshots.
_Pair = tuple[Snapshot, Snapshot]
#: Larger than any certificate chain or key a listener presents (a few kilobytes); a file
#: beyond it is not one, and is not read into memory.
MAX_PEM_BYTES = 1024 * 1024


def listener_context(tls: ServerTls) -> ssl.SSLContext:
    """The client port's context from ``listen.tls``; ConfigError when it cannot be made."""
    try:
        return server_context(
            tls.cert,
            tls.key,
            min_version=tls.min_version,
            ciphers=tls.ciphers,
            session_tickets=tls.session_tickets,
        )
    except ValueError as exc:  # min_version or ciphers that allow nothing
        raise ConfigError([f"listen.tls: {exc}"]) from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"listen.tls: cannot load {tls.cert}: {exc}"]) from None


class ListenerCertificates:
    """The listener's TLS context, whose certificate and key follow their files."""

    def __init__(self, tls: ServerTls, bus: EventBus) -> None:
        """Load the pair now; ConfigError when it cannot be (the gateway does not start)."""
        self._tls = tls
        self._bus = bus
        self._seen = self._tried = self._loaded = self._snapshot()
        #: The context the listener serves with, for its whole life.
        self.context = listener_context(tls)

    async def run(self, interval: float) -> None:
        """Poll the files every ``interval`` seconds until cancelled; reload a settled change."""
        while True:
            await asyncio.sleep(interval)
            if self.poll():
                # On the loop's thread: a context must not change under a handshake that
                # another thread is starting; a reload is a few milliseconds, once a renewal.
                self.reload("file")

    def poll(self) -> bool:
        """One poll: True when both files have settled on something not yet tried."""
        now = self._snapshot()
        if now != self._seen:  # still changing, or just changed: look again next poll
            self._seen = now
            return False
        if now in (self._tried, self._loaded):
            return False
        self._tried = now
        return True

    def reload(self, trigger: str) -> bool:
        """Load the files' pair into the live context if it is a valid pair; True when it was.

        ``trigger`` (``file`` or ``sighup``) goes into the event either way.
        """
        now = self._snapshot()
        self._seen = self._tried = now
        try:
            self._load()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._bus.emit(CertificatesReloaded(trigger, "rejected", _reason(exc)))
            return False
        self._loaded = now
        self._bus.emit(CertificatesReloaded(trigger, "ok", str(self._tls.cert)))
        return True

    def _load(self) -> None:
        """Try the pair on a scratch context, then load the same bytes into the live one."""
        cert = _read(self._tls.cert)
        key = _read(self._tls.key)
        with tempfile.TemporaryDirectory(prefix="cpr-gateway-tls-") as scratch:  # made 0700
            cert_copy, key_copy = Path(scratch, "cert.pem"), Path(scratch, "key.pem")
            write_private(cert_copy, cert)
            write_private(key_copy, key)
            tls = self._tls
            server_context(cert_copy, key_copy, min_version=tls.min_version, ciphers=tls.ciphers)
            self.context.load_cert_chain(cert_copy, key_copy)

    def _snapshot(self) -> _Pair:
        return snapshot(self._tls.cert), snapshot(self._tls.key)


def _read(path: Path) -> bytes:
    """A PEM file's bytes; ValueError when it is larger than any certificate or key."""
    with path.open("rb") as source:
        data = source.read(MAX_PEM_BYTES + 1)
    if len(data) > MAX_PEM_BYTES:
        raise ValueError(f"{path}: larger than {MAX_PEM_BYTES} bytes")
    return data


def _reason(exc: Exception) -> str:
    """A short fact: which file, and what is wrong with it (never key material)."""
    if isinstance(exc, ssl.SSLError):
        return f"not a valid certificate and key pair: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return f"{exc.filename or 'file'}: {exc.strerror or exc}"
    return str(exc)
