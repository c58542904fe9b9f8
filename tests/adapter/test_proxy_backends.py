"""The client's address carried on: a legacy backend with ``proxy_protocol: true`` names it in
a PROXY v2 header, and the emulator, trusting the gateway, checks the customers' IP
allow-lists (FEJLNR 16) against it."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from gateway_harness import (
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    gateway_config,
    raw_connection,
    read_all,
    running,
)
from proxy_harness import (
    CLIENT,
    ELSEWHERE,
    LOOPBACK,
    STRANGER,
    exchange_after,
    header_for,
    proxied_canned,
)

from cpr_devtools.client import Endpoint
from cpr_mainframe.config import EmulatorConfig, default_config_path, load_config
from emulator_harness import DEMO_PRIV, RunningEmulator, running_emulator
from gateway.backends import LegacyBackend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import LogonAnswer, LogonRequest, LookupRequest
from gateway.codec.headers import answer_fejlnr
from gateway.codec.proxy_protocol import Address, Command, ProxyHeader
from gateway.config.schema import ClientTls, GatewayConfig, ProxyProtocol
from gateway.model import FejlNr

#: The allow-list the tests give every customer: TEST-NET-1 only, so loopback is refused.
TEST_NET_1 = ipaddress.ip_network("192.0.2.0/24")


def _proxied_legacy(port: int) -> LegacyBackend:
    config = LegacyBackendConfig("mainframe", "127.0.0.1", port, None, proxy_protocol=True)
    return LegacyBackend.from_config(config)


@pytest.mark.parametrize(
    ("origin", "source"),
    [
        ("192.0.2.7", Address(ipaddress.IPv4Address("192.0.2.7"), 0)),
        ("2001:db8::7", Address(ipaddress.IPv6Address("2001:db8::7"), 0)),
    ],
    ids=["ipv4", "ipv6"],
)
async def test_the_legacy_backend_names_the_origin_ahead_of_the_request(
    origin: str, source: Address
) -> None:
    """The header names the client (port 0: not passed on) and the backend's own address;
    the request follows unchanged and the answer comes back unchanged."""
    headers: list[ProxyHeader] = []
    async with backend_server(proxied_canned(headers)) as port:
        answer = await _proxied_legacy(port).call(
            LOOKUP, LOOKUP.encode(), deadline=2.0, origin=origin
        )
    assert answer == LOOKUP_ANSWER
    backend = Address(ipaddress.IPv4Address("127.0.0.1"), port)
    assert headers == [ProxyHeader(Command.PROXY, source, backend)]


async def test_without_an_origin_the_legacy_backend_sends_local() -> None:
    """No client address known: a LOCAL header, so the server uses the connection's own."""
    headers: list[ProxyHeader] = []
    async with backend_server(proxied_canned(headers)) as port:
        await _proxied_legacy(port).call(LOOKUP, LOOKUP.encode(), deadline=2.0)
    assert headers == [ProxyHeader(Command.LOCAL)]


def _fenced_emulator(trusted: ProxyProtocol = LOOPBACK) -> EmulatorConfig:
    """The shipped emulator config, every customer allowed from TEST-NET-1 only, trusting
    ``trusted`` to send PROXY headers."""
    base = load_config(default_config_path())
    customers = tuple(replace(c, allow=(TEST_NET_1,)) for c in base.customers)
    return replace(base, customers=customers, listen=replace(base.listen, proxy_protocol=trusted))


def _gateway_to(emu: RunningEmulator, trusted: ProxyProtocol = LOOPBACK) -> GatewayConfig:
    """A gateway behind a balancer (trusting ``trusted``) whose legacy backend, over TLS,
    names the client to the emulator."""
    assert emu.ca is not None
    tls = ClientTls(emu.ca, "localhost")
    config = gateway_config(emu.port, deadline=5.0)
    backend = LegacyBackendConfig("mainframe", "127.0.0.1", emu.port, tls, proxy_protocol=True)
    listen = replace(config.listen, proxy_protocol=trusted)
    return replace(config, listen=listen, backends={"mainframe": backend})


async def _logon(port: int, prefix: bytes) -> bytes:
    logon = LogonRequest("PRIV", "0001", DEMO_PRIV.who.user, DEMO_PRIV.password)
    return await exchange_after(port, prefix, logon.encode())


async def test_the_allow_list_sees_the_client_the_balancer_named() -> None:
    """Through a gateway on loopback, a client the balancer names inside the customer's
    allow-list logs on and looks up (00); one named outside it gets 16, token or not."""
    async with running_emulator(_fenced_emulator()) as emu, running(_gateway_to(emu)) as run:
        port = run.client.port
        answer = LogonAnswer.decode(await _logon(port, header_for(CLIENT)))
        assert answer.fejlnr is FejlNr.OK
        pnr = emu.pnrs(1)[0]
        lookup = LookupRequest("PRIV", "0001", answer.token, DEMO_PRIV.who.user, pnr).encode()
        assert answer_fejlnr(await exchange_after(port, header_for(CLIENT), lookup)) == b"00"
        assert answer_fejlnr(await _logon(port, header_for(STRANGER))) == b"16"
        assert answer_fejlnr(await exchange_after(port, header_for(STRANGER), lookup)) == b"16"


async def test_a_client_that_is_not_behind_the_balancer_is_itself() -> None:
    """A gateway trusting no loopback balancer: a client's own header is refused as garbage,
    and its plain logon reaches the emulator as loopback, outside the allow-list: 16."""
    emulator = _fenced_emulator()
    async with running_emulator(emulator) as emu, running(_gateway_to(emu, ELSEWHERE)) as run:
        assert await _logon(run.client.port, header_for(CLIENT)) == b""
        assert answer_fejlnr(await _logon(run.client.port, b"")) == b"16"


async def test_the_emulator_closes_a_trusted_source_without_a_header() -> None:
    """Straight to the emulator from a trusted source, no header: closed unanswered and
    counted; with the header, the named client is checked against the allow-list."""
    async with running_emulator(_fenced_emulator(), tls=False) as emu:
        endpoint = Endpoint(emu.host, emu.port)
        async with raw_connection(endpoint) as (reader, writer):
            logon = LogonRequest("PRIV", "0001", DEMO_PRIV.who.user, DEMO_PRIV.password)
            writer.write(logon.encode())
            assert await read_all(reader) == b""
        assert emu.emulator.stats.rejected["proxy_header"] == 1
        answer = await exchange_after(emu.port, header_for(CLIENT), logon.encode())
        assert answer_fejlnr(answer) == b"00"
