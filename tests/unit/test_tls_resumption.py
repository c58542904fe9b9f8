"""gateway.backends.tls_resumption with real OpenSSL handshakes over memory BIOs and a clock
that moves only when told: what is offered, kept, aged out and given up on."""

from __future__ import annotations

import contextlib
import gc
import ssl
import sys
from pathlib import Path

import pytest

from cpr_devtools.pki import ensure_dev_pki
from gateway.backends import session_handoff
from gateway.backends.session_handoff import load
from gateway.backends.tls_resumption import REFUSED, STORED, ResumingContext
from gateway.tls import client_context, server_context
from memory_tls import pump_handshake


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connect(
    client: ResumingContext,
    server: ssl.SSLContext,
    *,
    close: bool = True,
    server_hostname: str = "localhost",
) -> ssl.SSLObject:
    """One handshake and a byte of data, as a call has (a TLS 1.3 ticket comes after the
    handshake, read with the answer), then close_notify as a call's connection ends (unless
    not ``close``); the client's TLS object afterwards. The handshake's errors propagate."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c_in, c_out, s_in, s_out = bios
    ours = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    theirs = server.wrap_bio(s_in, s_out, server_side=True)
    pump_handshake(ours, theirs, bios)
    theirs.write(b"x")
    c_in.write(s_out.read())
    assert ours.read(1) == b"x"
    if close:
        with contextlib.suppress(ssl.SSLWantReadError):
            ours.unwrap()
    return ours


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    ensure_dev_pki(tmp_path, servers=("emulator",))
    return tmp_path


#: Every test runs with sessions handed to OpenSSL directly and through CPython's setter.
HANDOFF = pytest.mark.parametrize("handoff", [True, False], ids=["handoff", "copy"])


def contexts(
    pki_dir: Path, clock: Clock, handoff: bool = True
) -> tuple[ResumingContext, ssl.SSLContext]:
    pki = ensure_dev_pki(pki_dir, servers=("emulator",))
    client = client_context(pki.ca_cert, kind=ResumingContext)
    assert isinstance(client, ResumingContext)
    client.configure_offers(max_age=60.0, clock=clock, handoff=handoff)
    assert (client.handoff is not None) is handoff
    return client, server_context(pki.cert("emulator"), pki.key("emulator"))


def test_sessions_are_handed_over_without_a_copy_where_the_layout_is_known() -> None:
    """On an interpreter whose layout session_handoff knows (the project's, CPython 3.11) the
    gateway offers sessions without CPython's copy; on any other it falls back to the copy."""
    known = sys.version_info[:2] in session_handoff._KNOWN_LAYOUTS
    assert (load() is not None) is known


def test_an_unknown_layout_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an interpreter whose object sizes are not the known ones, no pointer is read:
    sessions go through CPython's setter."""
    monkeypatch.setattr(session_handoff, "_KNOWN_LAYOUTS", {(3, 11): (96, 40, 96)})
    assert session_handoff.load() is None


@HANDOFF
def test_a_session_spent_by_an_abrupt_end_is_not_offered(pki_dir: Path, handoff: bool) -> None:
    """OpenSSL marks a session not to be resumed when a connection holding it is freed
    without close_notify. Handed over directly, the stored session is that one: it is
    dropped, not offered (and not taken for a refusal), and the next full handshake brings
    another. Copied, each connection had its own, and the stored one is still good."""
    clock = Clock()
    client, server = contexts(pki_dir, clock, handoff)
    abrupt = connect(client, server, close=False)
    assert client.keep(abrupt) == STORED
    del abrupt
    gc.collect()  # freed without close_notify
    after = connect(client, server)
    assert after.session_reused is not handoff
    assert client.keep(after) == (STORED if handoff else None)
    assert connect(client, server).session_reused


@HANDOFF
def test_a_full_handshakes_session_is_offered_until_too_old(pki_dir: Path, handoff: bool) -> None:
    clock = Clock()
    client, server = contexts(pki_dir, clock, handoff)
    first = connect(client, server)
    assert not first.session_reused and client.keep(first) == STORED
    clock.now += 59
    second = connect(client, server)
    assert second.session_reused and client.keep(second) is None
    clock.now += 1  # 60 s after the full handshake: the certificate is verified again
    third = connect(client, server)
    assert not third.session_reused and client.keep(third) == STORED
    fourth = connect(client, server)
    assert fourth.session_reused
    assert (client.resumed, client.full) == (1, 2)  # the fourth is not handed back


@HANDOFF
def test_a_resumed_connections_session_is_not_stored(pki_dir: Path, handoff: bool) -> None:
    """Only a full handshake's session is stored: a resumed one would carry the first
    verification past ``max_age``."""
    clock = Clock()
    client, server = contexts(pki_dir, clock, handoff)
    client.keep(connect(client, server))
    resumed = connect(client, server)
    clock.now += 60
    client.keep(resumed)  # handed back after the stored one aged out
    assert not connect(client, server).session_reused


@HANDOFF
def test_a_refusal_stops_the_offers_for_max_age(pki_dir: Path, handoff: bool) -> None:
    """A server with other ticket keys refuses; nothing is offered to it for ``max_age``, and
    then its own session is."""
    clock = Clock()
    client, server = contexts(pki_dir, clock, handoff)
    client.keep(connect(client, server))
    restarted = server_context(*_pair(pki_dir))
    refused = connect(client, restarted)
    assert not refused.session_reused and client.keep(refused) == REFUSED
    clock.now += 59
    waiting = connect(client, restarted)
    assert not waiting.session_reused and client.keep(waiting) is None
    clock.now += 1
    client.keep(connect(client, restarted))
    assert connect(client, restarted).session_reused


@HANDOFF
def test_forget_drops_the_session(pki_dir: Path, handoff: bool) -> None:
    client, server = contexts(pki_dir, Clock(), handoff)
    client.keep(connect(client, server))
    client.forget()
    assert not connect(client, server).session_reused


def test_a_context_that_is_not_resuming_has_nothing_to_offer(pki_dir: Path) -> None:
    """A connection of another context handed back is ignored (the bench's bare relay and
    tls_floor hand back whatever they have)."""
    client, server = contexts(pki_dir, Clock())
    plain = client_context(ensure_dev_pki(pki_dir, servers=("emulator",)).ca_cert)
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    assert client.keep(plain.wrap_bio(c_in, c_out, server_hostname="localhost")) is None
    assert (client.resumed, client.full) == (0, 0)
    assert not connect(client, server).session_reused


def _pair(pki_dir: Path) -> tuple[Path, Path]:
    pki = ensure_dev_pki(pki_dir, servers=("emulator",))
    return pki.cert("emulator"), pki.key("emulator")


def test_the_servers_certificate_is_verified_and_kept_in_der_only(pki_dir: Path) -> None:
    """A resuming connection verifies the server's certificate and name in the handshake, as
    any does; afterwards the certificate is there in DER, and not decoded into a dict (the
    one a TLS transport would decode after every handshake, for nobody)."""
    client, server = contexts(pki_dir, Clock())
    ours = connect(client, server, close=False)
    pki = ensure_dev_pki(pki_dir, servers=("emulator",))
    assert ours.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(
        pki.cert("emulator").read_text()
    )
    assert ours.getpeercert() is None
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(client, server, server_hostname="not-the-emulator")
