"""End to end: an existing-style client sees the same bytes through the gateway as directly.

Real emulator, real gateway, real TLS on both hops, loopback only. The client
behaves like the existing ones: new connection per request, one write, read to
EOF, never half-close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpr_devtools.client import Endpoint, exchange, logon
from cpr_devtools.pki import ensure_dev_pki
from emulator_harness import DEMO_OFF4, DEMO_PRIV, DemoUser, running_emulator
from gateway.app import Gateway
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, LookupRequest
from gateway.config.schema import (
    Admin,
    ClientTls,
    GatewayConfig,
    Limits,
    Listen,
    Match,
    Route,
    ServerTls,
)
from gateway.model import Family, FejlNr
from gateway.tls import client_context

#: The issue asks for every person of a 2,000-person register.
PERSONS = 2_000
#: Concurrent clients; enough to overlap work, few enough for a 2-core machine.
CLIENTS = 16


@dataclass(frozen=True, slots=True)
class Paths:
    """The two ways to reach the same emulator."""

    direct: Endpoint
    gateway: Endpoint
    pnrs: list[str]


@asynccontextmanager
async def both_paths(tmp_path: Path) -> AsyncIterator[Paths]:
    """An emulator over TLS and a gateway over TLS in front of it."""
    async with running_emulator(persons=PERSONS, workdir=tmp_path / "emulator") as emu:
        assert emu.ca is not None
        pki = ensure_dev_pki(tmp_path / "gateway-tls", servers=("gateway",))
        config = GatewayConfig(
            listen=Listen("127.0.0.1", 0, ServerTls(pki.cert("gateway"), pki.key("gateway"))),
            admin=Admin("127.0.0.1", 0),
            limits=Limits(read_timeout=10.0, max_connections=256, grace_period=5.0),
            backends={
                "mainframe": LegacyBackendConfig(
                    "mainframe", emu.host, emu.port, ClientTls(emu.ca, "localhost")
                )
            },
            routes=(Route("all", Match(), "mainframe", 10.0),),
        )
        gateway = Gateway(config)
        host, port = await gateway.start()
        try:
            yield Paths(
                direct=emu.endpoint,
                gateway=Endpoint(host, port, client_context(pki.ca_cert), "localhost"),
                pnrs=emu.pnrs(),
            )
        finally:
            await gateway.aclose()


async def _compare_all(paths: Paths, user: DemoUser, family: Family) -> int:
    """Look every PNR up both ways with one token; returns how many answers matched."""
    token = await logon(paths.gateway, user.who, user.password)
    slots = asyncio.Semaphore(CLIENTS)
    who = user.who

    async def one(pnr: str) -> None:
        record = LookupRequest(who.transaction, who.customer, token, who.user, pnr).encode()
        async with slots:
            via_gateway = await exchange(paths.gateway, record)
            direct = await exchange(paths.direct, record)
        assert via_gateway == direct, f"answers differ for person #{paths.pnrs.index(pnr)}"
        answer = LookupAnswer.decode(via_gateway, family)  # checks the length field
        assert answer.fejlnr is FejlNr.OK
        assert answer.records[0].type == "000"
        assert answer.records[-1].type == "999"
        assert answer.records[-1].fields["ANTAL"] == len(answer.records) - 2

    await asyncio.gather(*(one(pnr) for pnr in paths.pnrs))
    return len(paths.pnrs)


@pytest.mark.slow
@pytest.mark.parametrize(("user", "family"), [(DEMO_PRIV, Family.PRIV), (DEMO_OFF4, Family.OFF4)])
async def test_every_person_is_byte_identical_through_the_gateway(
    tmp_path: Path, user: DemoUser, family: Family
) -> None:
    """Every person of a 2,000-person register answers byte for byte the same both ways."""
    async with both_paths(tmp_path) as paths:
        assert len(paths.pnrs) >= PERSONS
        assert await _compare_all(paths, user, family) == len(paths.pnrs)


async def test_error_answers_and_logons_are_byte_identical(tmp_path: Path) -> None:
    """Failed logons, unknown PNRs, bad ABON/DATA types and stale tokens match byte for byte."""
    async with both_paths(tmp_path) as paths:
        who = DEMO_PRIV.who
        token = await logon(paths.gateway, who, DEMO_PRIV.password)
        unknown = "3112999999"  # a calendar date, not in the register
        cases = [
            LogonRequest(who.transaction, who.customer, who.user, "Wrong#12").encode(),
            LogonRequest(who.transaction, "9999", who.user, DEMO_PRIV.password).encode(),
            LookupRequest(who.transaction, who.customer, token, who.user, unknown).encode(),
            LookupRequest(
                who.transaction, who.customer, "NoSuchTk", who.user, paths.pnrs[0]
            ).encode(),
            LookupRequest(
                who.transaction, who.customer, token, who.user, paths.pnrs[0], "7"
            ).encode(),
            LookupRequest(
                who.transaction, who.customer, token, who.user, paths.pnrs[0], "0", "4"
            ).encode(),
            LookupRequest("OFF4", who.customer, token, who.user, paths.pnrs[0]).encode(),
            LookupRequest(who.transaction, who.customer, token, who.user, "").encode(),
        ]
        expected = ["01", "06", "05", "07", "10", "11", "14", "17"]
        for record, fejlnr in zip(cases, expected, strict=True):
            via_gateway = await exchange(paths.gateway, record)
            direct = await exchange(paths.direct, record)
            assert via_gateway == direct
            assert via_gateway[22:24] == fejlnr.encode()  # FEJLNR is bytes 23-24 in both answers
        ok = LogonAnswer.decode(
            await exchange(
                paths.gateway,
                LogonRequest(who.transaction, who.customer, who.user, DEMO_PRIV.password).encode(),
            )
        )
        assert ok.fejlnr is FejlNr.OK and len(ok.token) == 8 and ok.token.isalnum()
