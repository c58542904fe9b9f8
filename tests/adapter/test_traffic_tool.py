"""`cpr-gateway traffic`: callers behave like existing clients against real servers on loopback."""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cpr_devtools.client import Credentials, Endpoint, logon
from cpr_devtools.traffic import DEMO_CALLERS, DemoCaller, run_traffic, run_traffic_command
from emulator_harness import running_emulator
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, LookupRequest
from gateway.codec.framing import record_length
from gateway.model import Family, FejlNr


async def test_every_lookup_is_answered_with_one_logon_per_caller() -> None:
    """Against the emulator: PRIV and OFF4 callers log on once each, every lookup gets 00."""
    async with running_emulator(persons=300, tls=False) as emu:
        report = await run_traffic(emu.endpoint, emu.pnrs(50), count=40, rate=500.0)
    assert report.sent == report.answered == 40
    assert dict(report.answers) == {"00": 40}
    assert (report.logons, report.failures) == (2, 0)
    assert "40 lookups" in report.summary()


async def test_a_refused_caller_logs_on_once_and_sends_nothing_more() -> None:
    """A wrong password: one refused logon (no lock storm), its lookups counted as failures."""
    wrong = DemoCaller(DEMO_CALLERS[0].who, "Wrong#12")
    async with running_emulator(persons=300, tls=False) as emu:
        report = await run_traffic(emu.endpoint, emu.pnrs(10), count=12, rate=500.0, users=[wrong])
        # One failed attempt is far from the lock after five: the right password still works.
        assert await logon(emu.endpoint, wrong.who, DEMO_CALLERS[0].password)
    assert dict(report.logon_refusals) == {"01": 1}
    assert (report.sent, report.failures, report.answered) == (12, 12, 0)


async def test_the_count_and_the_time_limit_bound_a_run() -> None:
    """count=0 sends nothing; a time limit of zero stops the schedule before the first lookup."""
    async with running_emulator(persons=300, tls=False) as emu:
        nothing = await run_traffic(emu.endpoint, emu.pnrs(5), count=0, rate=10.0)
        stopped = await run_traffic(emu.endpoint, emu.pnrs(5), count=5, rate=10.0, time_limit=0)
    assert (nothing.sent, nothing.logons) == (0, 0)
    assert (stopped.sent, stopped.logons) == (0, 0)


@asynccontextmanager
async def expiring_server() -> AsyncIterator[Endpoint]:
    """A CPR Direkte server whose first token answers 07: the client must log on again."""
    tokens = (f"Tok{n:05d}" for n in itertools.count(1))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(10)
        length = record_length(head)
        assert length is not None
        data = head + await reader.readexactly(length - 10)
        if length == 35:
            request = LogonRequest.decode(data)
            answer = LogonAnswer(request.customer, request.user, FejlNr.OK, token=next(tokens))
            writer.write(answer.encode())
        else:
            lookup = LookupRequest.decode(data)
            fejlnr = FejlNr.NEW_LOGON if lookup.token == "Tok00001" else FejlNr.OK
            writer.write(LookupAnswer.for_request(lookup, fejlnr).encode(Family.PRIV))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield Endpoint("127.0.0.1", server.sockets[0].getsockname()[1])


async def test_a_07_means_one_new_logon_and_a_retry() -> None:
    """However many lookups hold the expired token, the caller logs on again exactly once."""
    caller = DemoCaller(Credentials("PRIV", "0001", "DEMO0001"), "Demo#123")
    async with expiring_server() as endpoint:
        report = await run_traffic(
            endpoint, ["0101801001"], count=10, rate=10_000.0, users=[caller]
        )
    assert report.logons == 2
    assert dict(report.answers) == {"00": 10}


async def test_the_command_draws_pnrs_from_the_register_and_prints_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cpr-gateway traffic`: exit 0 when all lookups got 00; one line, no PNR in it."""
    async with running_emulator(persons=300, tls=False) as emu:
        args = argparse.Namespace(
            host=emu.host, port=emu.port, plaintext=True, ca=Path("unused"),
            register=emu.config.register, count=10, rate=500.0, time_limit=None, seed=7,
        )  # fmt: skip
        assert await run_traffic_command(args) == 0
        pnrs = emu.pnrs()
    # The emulator logs to stdout too; the command's own line is the last one.
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("10 lookups in ")
    assert summary.endswith("; 2 logons, 0 without answer")
    assert not any(pnr in summary for pnr in pnrs)
