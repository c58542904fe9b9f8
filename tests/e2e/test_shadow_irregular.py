"""Shadow comparison on answers with the real mainframe's irregularities (spec §10).

The primary is the real emulator behind a small relay that makes its lookup answers look
like captured ones from the real mainframe: where the emulator writes zeros in the 001
record's POSTNR (persons without a Danish address), the relay writes blanks, as the real
service does. The shadow side is the same emulator, reached directly. The two answers differ
in that one field only, and the comparison must say so, by name, with the blank shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cpr_devtools.client import Endpoint, exchange, logon
from emulator_harness import DEMO_PRIV, RunningEmulator, running_emulator
from gateway.app import Gateway
from gateway.codec import LookupAnswer, LookupRequest, Record, RequestFramer
from gateway.comparison import FieldKey
from gateway.config import load_routing
from gateway.model import Family, FejlNr, Irregular
from gateway.observe.events import Event, ShadowCompleted
from gateway.shadow.pseudonym import load_key
from gateway.shadow.sealing import Sealer
from gateway.shadow.store import MismatchStore

ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{relay}", tls: null}}
  emulator: {{kind: legacy, address: "127.0.0.1:{emulator}", tls: null}}
routes:
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 5s
    shadow:
      - {{backend: emulator, sample: 100%, deadline: 5s}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
shadowing: {{store: shadow.sqlite, key_file: shadow.key, shed_lag: 1m}}
# Every copy needs the services' token from the logon's repeat: on a busy machine their
# password check may outlast the default budget, so this test gives it room.
sessions: {{fan_out_timeout: 10s}}
"""
BLANK = Irregular("    ")
POSTNR = FieldKey("lookup", "001", "POSTNR")


def as_captured(answer: bytes, family: Family) -> bytes:
    """The emulator's answer as the real mainframe sends it: a zero POSTNR is blank."""
    decoded = LookupAnswer.decode(answer, family)
    records = tuple(
        Record(r.type, {**r.fields, "POSTNR": BLANK})
        if r.type == "001" and r.fields.get("POSTNR") == 0
        else r
        for r in decoded.records
    )
    return LookupAnswer(
        decoded.customer, decoded.abon_type, decoded.data_type, decoded.token,
        decoded.user, decoded.fejlnr, records,
    ).encode(family)  # fmt: skip


@asynccontextmanager
async def relay(emulator: Endpoint) -> AsyncIterator[int]:
    """A CPR Direkte server that forwards each request to ``emulator`` and answers with what
    it says, lookups made to look captured (:func:`as_captured`)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = RequestFramer()
        while (request := framer.next_request()) is None:
            framer.receive_data(await reader.read(64))
        answer = await exchange(emulator, request.encode())
        if isinstance(request, LookupRequest):
            answer = as_captured(answer, Family(request.transaction))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@asynccontextmanager
async def gateway(tmp_path: Path, emu: RunningEmulator) -> AsyncIterator[tuple[Gateway, Endpoint]]:
    """A gateway whose primary is the relay and whose shadow is the emulator itself."""
    async with relay(emu.endpoint) as relay_port:
        routing = tmp_path / "routing.yaml"
        routing.write_text(ROUTING.format(relay=relay_port, emulator=emu.port))
        running = Gateway(load_routing(routing), watch_interval=None)
        host, port = await running.start()
        try:
            yield running, Endpoint(host, port)
        finally:
            await running.aclose()


async def test_blank_against_zero_is_reported_by_name_and_nothing_else_differs(
    tmp_path: Path,
) -> None:
    """Persons without a Danish address (POSTNR 0000 from the emulator, blank from the
    'mainframe') differ in 001 / POSTNR only, shown as blank against 0; the others match."""
    async with running_emulator(persons=300, tls=False, workdir=tmp_path / "emu") as emu:
        pnrs = [*emu.pnrs(5, status="80"), *emu.pnrs(5, status="01")]
        zero = [pnr for pnr in pnrs if await _postnr(emu.endpoint, pnr) == 0]
        assert len(zero) >= 3  # the emigrated ones, at least: else the test shows nothing
        async with gateway(tmp_path, emu) as (gw, endpoint):
            outcomes = await _look_up(gw, endpoint, pnrs)
            tally = gw.shadows.tally("lookups", "emulator")
    assert sorted(outcomes) == sorted(["differs"] * len(zero) + ["match"] * (10 - len(zero)))
    differing = {key: stats.differs for key, stats in tally.fields.items() if stats.differs}
    assert differing == {POSTNR: len(zero)}
    sealer = Sealer(load_key(tmp_path / "shadow.key"))
    with MismatchStore.open(tmp_path / "shadow.sqlite", prune=False, sealer=sealer) as store:
        examples = store.examples("lookups", "emulator", POSTNR)
    assert {(e.primary, e.candidate) for e in examples} == {("'    ' (blank)", "0")}


async def _postnr(emulator: Endpoint, pnr: str) -> object:
    """POSTNR of ``pnr``'s 001 record as the emulator itself answers it."""
    who = DEMO_PRIV.who
    token = await logon(emulator, who, DEMO_PRIV.password)
    request = LookupRequest(who.transaction, who.customer, token, who.user, pnr)
    answer = LookupAnswer.decode(await exchange(emulator, request.encode()), Family.PRIV)
    return next(r.fields["POSTNR"] for r in answer.records if r.type == "001")


async def _look_up(gw: Gateway, endpoint: Endpoint, pnrs: list[str]) -> list[str]:
    """Look up each PNR through the gateway; the outcome of each one's shadow copy."""
    outcomes: list[str] = []
    done = asyncio.Event()

    def count(event: Event) -> None:
        if isinstance(event, ShadowCompleted):
            outcomes.append(event.outcome)
            if len(outcomes) == len(pnrs):
                done.set()

    gw.bus.subscribe(count)
    who = DEMO_PRIV.who
    token = await logon(endpoint, who, DEMO_PRIV.password)
    for pnr in pnrs:
        request = LookupRequest(who.transaction, who.customer, token, who.user, pnr)
        answer = LookupAnswer.decode(await exchange(endpoint, request.encode()), Family.PRIV)
        assert answer.fejlnr is FejlNr.OK
    async with asyncio.timeout(30):
        await done.wait()
    return outcomes
