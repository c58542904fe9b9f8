"""The legacy hop with client certificates: the emulator can require one (``tls.client_ca``),
the gateway's legacy backend presents ``tls.cert``/``tls.key``; without one the handshake
fails and the client gets 09."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from gateway_harness import gateway_config, running

from cpr_devtools.client import exchange
from cpr_devtools.pki import GATEWAY_CLIENT, DevPki, ensure_dev_pki
from cpr_mainframe.config import Tls, default_config_path, load_config
from cpr_mainframe.server import Emulator
from emulator_harness import DEMO_PRIV, TEST_PASSWORD_COST, register_of
from gateway.codec import LogonAnswer, LogonRequest
from gateway.config.schema import ClientTls
from gateway.model import FejlNr

LOGON = LogonRequest(
    DEMO_PRIV.who.transaction, DEMO_PRIV.who.customer, DEMO_PRIV.who.user, DEMO_PRIV.password
)


@asynccontextmanager
async def requiring_emulator(tmp_path: Path, pki: DevPki) -> AsyncIterator[int]:
    """The real emulator over TLS, requiring client certificates of ``pki``'s CA; its port."""
    base = load_config(default_config_path())
    config = replace(
        base,
        listen=replace(base.listen, host="127.0.0.1", port=0),
        tls=Tls(pki.cert("emulator"), pki.key("emulator"), client_ca=pki.ca_cert),
        register=register_of(300),
        state=tmp_path / "emulator-state.sqlite",
        password_cost=TEST_PASSWORD_COST,
    )
    emulator = Emulator(config)
    _host, port = await emulator.start()
    try:
        yield port
    finally:
        await emulator.aclose(1.0)


async def _logon_through_gateway(tmp_path: Path, pki: DevPki, tls: ClientTls) -> FejlNr:
    """A client's logon through a gateway whose legacy backend is that emulator."""
    async with (
        requiring_emulator(tmp_path, pki) as port,
        running(gateway_config(port, backend_tls=tls)) as run,
    ):
        return LogonAnswer.decode(await exchange(run.client, LOGON.encode())).fejlnr


def _tls(pki: DevPki, *, present: bool) -> ClientTls:
    pair = (pki.cert(GATEWAY_CLIENT), pki.key(GATEWAY_CLIENT)) if present else (None, None)
    return ClientTls(pki.ca_cert, "localhost", *pair)


async def test_a_presented_client_certificate_is_served(tmp_path: Path) -> None:
    """The gateway presents its certificate: the emulator answers the logon (00)."""
    pki = ensure_dev_pki(tmp_path / "tls", servers=("emulator",), clients=(GATEWAY_CLIENT,))
    assert await _logon_through_gateway(tmp_path, pki, _tls(pki, present=True)) is FejlNr.OK


async def test_a_required_certificate_not_presented_is_09(tmp_path: Path) -> None:
    """No client certificate: the emulator ends the handshake, the client gets 09."""
    pki = ensure_dev_pki(tmp_path / "tls", servers=("emulator",), clients=(GATEWAY_CLIENT,))
    assert (
        await _logon_through_gateway(tmp_path, pki, _tls(pki, present=False))
        is FejlNr.NO_CONNECTION
    )


async def test_a_certificate_of_another_ca_is_09(tmp_path: Path) -> None:
    """A client certificate the emulator's CA did not sign is no certificate at all: 09."""
    pki = ensure_dev_pki(tmp_path / "tls", servers=("emulator",))
    other = ensure_dev_pki(tmp_path / "other", servers=(), clients=(GATEWAY_CLIENT,))
    tls = ClientTls(pki.ca_cert, "localhost", other.cert(GATEWAY_CLIENT), other.key(GATEWAY_CLIENT))
    assert await _logon_through_gateway(tmp_path, pki, tls) is FejlNr.NO_CONNECTION
