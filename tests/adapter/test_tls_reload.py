"""The client port's TLS: its certificate follows its files (a real TLS client sees a renewed
certificate on its next handshake while a connection opened before completes; a bad pair
is refused and the old one stays); old protocols and weak suites are refused; session
tickets are sent unless turned off."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from gateway_harness import (
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    canned,
    free_port,
    gateway_config,
    held,
    next_event,
)

from cpr_devtools.client import read_to_eof
from cpr_devtools.pki import DevPki, ensure_dev_pki
from gateway.app import Gateway
from gateway.codec import MAX_ANSWER_LENGTH
from gateway.config.schema import TLS_VERSIONS, ServerTls
from gateway.errors import ConfigError
from gateway.observe.events import CertificatesReloaded, Event, Lifecycle
from gateway.tls import client_context, server_context


def _pki(tmp_path: Path) -> tuple[DevPki, ServerTls]:
    """A CA with two server pairs, ``old`` and ``new``; the listener's files hold ``old``."""
    pki = ensure_dev_pki(tmp_path / "pki", servers=("old", "new"))
    live = tmp_path / "live"
    _install(pki, "old", live)
    return pki, ServerTls(live / "gateway.crt", live / "gateway.key")


def _install(pki: DevPki, name: str, live: Path) -> None:
    """Put pair ``name`` behind the listener's files at once, as a Kubernetes Secret volume
    does: the pair is written into a directory of its own, then the ``live`` link is swapped."""
    pair = pki.directory / f"pair-{name}"
    pair.mkdir(exist_ok=True)
    shutil.copyfile(pki.cert(name), pair / "gateway.crt")
    shutil.copyfile(pki.key(name), pair / "gateway.key")
    swap = live.with_name(f"{live.name}.swap")
    swap.symlink_to(pair, target_is_directory=True)
    os.replace(swap, live)


async def _connect(pki: DevPki, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(pki.ca_cert), server_hostname="localhost"
    )


def _presented(writer: asyncio.StreamWriter) -> bytes:
    """The server certificate this connection's handshake got, as PEM."""
    ssl_object = writer.get_extra_info("ssl_object")
    return ssl.DER_cert_to_PEM_cert(ssl_object.getpeercert(binary_form=True)).encode()


def _pem(path: Path) -> bytes:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(path.read_text())).encode()


def _results(gateway: Gateway) -> list[CertificatesReloaded]:
    seen: list[CertificatesReloaded] = []

    def record(event: Event) -> None:
        if isinstance(event, CertificatesReloaded):
            seen.append(event)

    gateway.bus.subscribe(record)
    return seen


async def test_a_renewed_certificate_is_served_while_an_open_connection_completes(
    tmp_path: Path,
) -> None:
    """Files replaced: the next handshake presents the new certificate; a request that was
    in flight on the old one is answered in full."""
    pki, tls = _pki(tmp_path)
    arrived, release = asyncio.Event(), asyncio.Event()
    async with backend_server(held(arrived, release)) as port:
        gateway = Gateway(gateway_config(port, listen_tls=tls, deadline=5.0), watch_interval=0.02)
        _host, client_port = await gateway.start()
        seen = _results(gateway)
        try:
            reader, writer = await _connect(pki, client_port)
            assert _presented(writer) == _pem(pki.cert("old"))
            writer.write(LOOKUP.encode())
            await arrived.wait()  # in flight, on a connection with the old certificate

            reloaded = next_event(gateway, CertificatesReloaded)
            _install(pki, "new", tls.cert.parent)
            await reloaded.wait()
            _reader2, writer2 = await _connect(pki, client_port)
            assert _presented(writer2) == _pem(pki.cert("new"))
            writer2.close()

            release.set()
            assert await read_to_eof(reader, MAX_ANSWER_LENGTH) == LOOKUP_ANSWER
            writer.close()
        finally:
            await gateway.aclose()
    assert [(event.trigger, event.result) for event in seen] == [("file", "ok")]
    assert gateway.metrics.value("cpr_gateway_tls_reloads_total", result="ok") == 1


async def test_a_bad_pair_is_refused_and_the_old_one_stays(tmp_path: Path) -> None:
    """A key that does not match the certificate: rejected, counted, logged; handshakes go
    on with the old pair (the live context never loses its certificate)."""
    pki, tls = _pki(tmp_path)
    arrived, release = asyncio.Event(), asyncio.Event()
    release.set()
    async with backend_server(held(arrived, release)) as port:
        gateway = Gateway(gateway_config(port, listen_tls=tls), watch_interval=0.02)
        _host, client_port = await gateway.start()
        seen = _results(gateway)
        try:
            rejected = next_event(gateway, CertificatesReloaded)
            shutil.copyfile(pki.cert("new"), tls.cert)  # the new certificate, the old key
            await rejected.wait()
            reader, writer = await _connect(pki, client_port)
            assert _presented(writer) == _pem(pki.cert("old"))
            writer.write(LOOKUP.encode())
            assert await read_to_eof(reader, MAX_ANSWER_LENGTH) == LOOKUP_ANSWER
            writer.close()
        finally:
            await gateway.aclose()
    [event] = seen
    assert (event.trigger, event.result) == ("file", "rejected")
    assert "not a valid certificate and key pair" in event.detail
    assert gateway.metrics.value("cpr_gateway_tls_reloads_total", result="rejected") == 1


async def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    """With no polling at all, SIGHUP loads the renewed pair."""
    pki, tls = _pki(tmp_path)
    arrived, release = asyncio.Event(), asyncio.Event()
    async with backend_server(held(arrived, release)) as port:
        gateway = Gateway(gateway_config(port, listen_tls=tls), watch_interval=None)
        listening: list[str] = []
        gateway.bus.subscribe(
            lambda event: listening.append(event.detail) if isinstance(event, Lifecycle) else None
        )
        started = next_event(gateway, Lifecycle)
        seen = _results(gateway)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(gateway.serve(stop))
            await started.wait()
            client_port = int(listening[0].rpartition(":")[2])
            _install(pki, "new", tls.cert.parent)
            reloaded = next_event(gateway, CertificatesReloaded)
            os.kill(os.getpid(), signal.SIGHUP)
            await reloaded.wait()
            _reader, writer = await _connect(pki, client_port)
            assert _presented(writer) == _pem(pki.cert("new"))
            writer.close()
            stop.set()
    assert [(event.trigger, event.result) for event in seen] == [("sighup", "ok")]


#: How a client sees a server refuse its handshake: an alert, or the connection reset.
_REFUSED = (ssl.SSLError, ConnectionResetError)


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A TLS handshake between the two contexts over loopback; SSLError when they disagree."""

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        writer.close()


async def test_the_client_port_refuses_old_protocols_and_weak_suites(tmp_path: Path) -> None:
    """TLS 1.1, and TLS 1.2 with a CBC suite (which Python's own server default accepts),
    cannot complete a handshake; ``min_version: TLSv1.3`` refuses TLS 1.2 too."""
    pki, tls = _pki(tmp_path)
    ours = server_context(tls.cert, tls.key)
    python_default = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    python_default.load_cert_chain(tls.cert, tls.key)

    cbc = client_context(pki.ca_cert)
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA256")
    await _handshake(python_default, cbc)  # the weak suite is a real, working choice
    with pytest.raises(_REFUSED):
        await _handshake(ours, cbc)

    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old = client_context(pki.ca_cert)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        lax = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        lax.minimum_version = ssl.TLSVersion.TLSv1_1
        lax.set_ciphers("DEFAULT:@SECLEVEL=0")
        lax.load_cert_chain(tls.cert, tls.key)
    await _handshake(lax, old)  # this OpenSSL still speaks TLS 1.1 when allowed to
    with pytest.raises(_REFUSED):
        await _handshake(ours, old)

    tls12 = client_context(pki.ca_cert)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    await _handshake(ours, tls12)
    with pytest.raises(_REFUSED):
        await _handshake(server_context(tls.cert, tls.key, min_version="TLSv1.3"), tls12)


@pytest.mark.parametrize(("tickets", "resumable"), [(None, True), (0, False)])
async def test_session_tickets_are_sent_unless_turned_off(
    tmp_path: Path, tickets: int | None, resumable: bool
) -> None:
    """By default a TLS 1.3 client gets session tickets with its answer and can resume its
    next connection; ``session_tickets: 0`` sends none, and every connection is a full
    handshake (which a consumer that never resumes does anyway). The gateway counts its
    client handshakes, resumed and full."""
    pki, tls = _pki(tmp_path)
    if tickets is not None:
        tls = replace(tls, session_tickets=tickets)
    async with backend_server(canned()) as port:
        gateway = Gateway(gateway_config(port, listen_tls=tls), watch_interval=None)
        _host, client_port = await gateway.start()
        client = client_context(pki.ca_cert)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", client_port, ssl=client, server_hostname="localhost"
            )
            writer.write(LOOKUP.encode())
            assert await read_to_eof(reader, MAX_ANSWER_LENGTH) == LOOKUP_ANSWER
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.version() == "TLSv1.3"
            session = ssl_object.session
            writer.close()
            assert (session is not None and session.has_ticket) is resumable
            if resumable:
                assert await asyncio.to_thread(_resumes, client, client_port, session)
            # Whether consumers resume is what decides the setting: the gateway counts it.
            handshakes = "cpr_gateway_client_tls_handshakes_total"
            assert gateway.metrics.value(handshakes, session="full") == 1
            assert gateway.metrics.value(handshakes, session="resumed") == int(resumable)
        finally:
            await gateway.aclose()


def _resumes(client: ssl.SSLContext, port: int, session: ssl.SSLSession) -> bool:
    """Whether a lookup on a new connection offering ``session`` resumes it (a blocking
    client: asyncio's connections take no session to offer). The answer is read whole, so
    the gateway has seen the handshake through by the time this returns."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(LOOKUP.encode())
        answer = b""
        while chunk := tls.recv(MAX_ANSWER_LENGTH):
            answer += chunk
        assert answer == LOOKUP_ANSWER
        return tls.session_reused is True


async def test_ciphers_that_select_nothing_stop_the_start(tmp_path: Path) -> None:
    """A cipher string of the right shape that this OpenSSL cannot use is a ConfigError at
    start, naming it (reading routing.yaml cannot tell: it loads no ssl)."""
    _, tls = _pki(tmp_path)
    bad = replace(tls, ciphers="NOSUCHSUITE")
    gateway = Gateway(gateway_config(free_port(), listen_tls=bad), watch_interval=None)
    with pytest.raises(ConfigError, match=r"listen\.tls: ciphers 'NOSUCHSUITE' select no"):
        await gateway.start()


def test_the_configs_defaults_are_the_tls_modules() -> None:
    """routing.yaml's listen.tls defaults (written out in the pure config schema) are the ones
    gateway.tls applies when not told otherwise."""
    from gateway import tls as policy

    defaults = ServerTls(Path("c"), Path("k"))
    assert (defaults.min_version, defaults.ciphers) == (
        policy.DEFAULT_MIN_VERSION,
        policy.DEFAULT_CIPHERS,
    )
    assert tuple(policy.MIN_VERSIONS) == TLS_VERSIONS
    # session_tickets' default is what a context sends when not told (OpenSSL's own).
    assert (
        defaults.session_tickets == ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).num_tickets
    )


def test_a_renewal_written_file_by_file_is_loaded_once_as_a_pair(tmp_path: Path) -> None:
    """The certificate written, then the key: nothing is tried until both have stayed the same
    for a poll, so the half-renewed pair (new certificate, old key) is never loaded."""
    from gateway.observe.events import EventBus
    from gateway.server.certificates import ListenerCertificates

    pki = ensure_dev_pki(tmp_path / "pki", servers=("old", "new"))
    live = tmp_path / "files"
    live.mkdir()
    tls = ServerTls(live / "gateway.crt", live / "gateway.key")
    shutil.copyfile(pki.cert("old"), tls.cert)
    shutil.copyfile(pki.key("old"), tls.key)
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    certificates = ListenerCertificates(tls, bus)

    shutil.copyfile(pki.cert("new"), tls.cert)
    assert not certificates.poll()  # just changed: look again
    shutil.copyfile(pki.key("new"), tls.key)
    assert not certificates.poll()  # changed again
    assert certificates.poll()  # settled: a pair
    assert certificates.reload("file")
    assert not certificates.poll()  # loaded: nothing new
    assert [(e.trigger, e.result) for e in seen if isinstance(e, CertificatesReloaded)] == [
        ("file", "ok")
    ]
