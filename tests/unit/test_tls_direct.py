"""gateway.tls's DirectObject and DirectContext with real OpenSSL handshakes over memory
BIOs: the same handshake, records, errors and shutdown as ``ssl.SSLObject``, through the C
object's own methods; and the server name encoded as CPython encodes it, per name."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import cast

import pytest

from cpr_devtools.pki import ensure_dev_pki
from gateway.backends.tls_resumption import OfferedObject, ResumingContext
from gateway.tls import _DIRECT, DirectContext, DirectObject, client_context, server_context
from memory_tls import pump_handshake


@pytest.fixture
def pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    client = client_context(pki.ca_cert)
    return client, server_context(pki.cert("emulator"), pki.key("emulator"))


def test_both_sides_are_direct_objects_that_call_the_c_methods(
    pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client, server = pair
    assert isinstance(client, DirectContext) and isinstance(server, DirectContext)
    ours = client.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    assert type(ours) is DirectObject
    inner = ours._sslobj  # type: ignore[attr-defined]
    for name, direct in (("read", "read"), ("write", "write"), ("unwrap", "shutdown")):
        method = getattr(ours, name)
        assert method.__self__ is inner and method.__name__ == direct
    # Called by keyword elsewhere, so left to SSLObject's Python method.
    assert ours.getpeercert.__func__ is ssl.SSLObject.getpeercert  # type: ignore[attr-defined]


def test_an_exchange_and_its_close_go_as_through_sslobject(
    pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client, server = pair
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c_in, c_out, s_in, s_out = bios
    ours = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    theirs = server.wrap_bio(s_in, s_out, server_side=True)
    with pytest.raises(ssl.SSLWantReadError):  # nothing from the server yet
        ours.do_handshake()
    pump_handshake(ours, theirs, bios)
    assert ours.version() == "TLSv1.3" and ours.cipher() is not None
    assert ours.compression() is None
    assert ours.write(b"lookup") == 6
    s_in.write(c_out.read())
    buffer = bytearray(16)
    assert cast(int, theirs.read(16, buffer)) == 6 and bytes(buffer[:6]) == b"lookup"
    with pytest.raises(ssl.SSLWantReadError):
        theirs.read(16)
    assert theirs.pending() == 0
    theirs.write(b"answer")
    c_in.write(s_out.read())
    assert ours.read(64) == b"answer"
    assert ours.getpeercert(binary_form=True)  # the server's certificate, in DER
    with pytest.raises(ssl.SSLWantReadError):  # close_notify sent, the server's not yet read
        ours.unwrap()
    s_in.write(c_out.read())
    assert theirs.read(16) == b""  # the client's close_notify: a clean end


def test_a_failed_verification_raises_as_before(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    client = client_context(pki.ca_cert)
    server = server_context(pki.cert("emulator"), pki.key("emulator"))
    bios = [ssl.MemoryBIO() for _ in range(4)]
    ours = client.wrap_bio(bios[0], bios[1], server_hostname="not-the-emulator.example")
    theirs = server.wrap_bio(bios[2], bios[3], server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        pump_handshake(ours, theirs, bios)


def test_an_override_in_a_subclass_is_kept() -> None:
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    ours = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    assert type(ours) is OfferedObject
    assert ours.getpeercert() is None  # its own: the certificate in DER only
    assert "read" in vars(ours) and "getpeercert" not in vars(ours)


def test_server_names_are_encoded_as_cpython_encodes_them_one_name_after_another() -> None:
    context = DirectContext(ssl.PROTOCOL_TLS_CLIENT)
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for name in ("localhost", "bücher.example", "localhost", b"cpr.example", None):
        ours = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
        theirs = plain.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
        assert ours.server_hostname == theirs.server_hostname
    assert context._encode_hostname("bücher.example") == "xn--bcher-kva.example"


def _own(self: object, *args: object) -> bytes:
    return b"own"


class _ReadsItself(DirectObject):
    read = _own  # type: ignore[assignment]


class _AllItsOwn(DirectObject):
    locals().update({name: _own for name, _c in _DIRECT})


def test_subclasses_overriding_some_or_all_methods_bind_only_the_rest() -> None:
    context = DirectContext(ssl.PROTOCOL_TLS_CLIENT)
    for cls, bound in ((_ReadsItself, {"write", "unwrap"}), (_AllItsOwn, set())):
        context.sslobject_class = cls
        ours = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
        assert type(ours) is cls and ours.read(1) == b"own"
        assert {name for name, _c in _DIRECT} & set(vars(ours)) >= bound
        assert "read" not in vars(ours)
        for name in bound:
            assert getattr(ours, name).__self__ is ours._sslobj  # type: ignore[union-attr]
