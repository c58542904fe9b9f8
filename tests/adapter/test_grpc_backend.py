"""The gRPC backend adapter against the real emulator and a real grpc.aio server.

The legacy answer comes from the real emulator over TCP; the modern answer from
the adapter talking to the real cpr.v1 services on a store migrated from the
same register. Each side issues its own token and the answer echoes it, so the
modern answer is compared after putting the legacy token in its token bytes
(7-14) — the one rewrite the gateway's session broker does. Every other byte
must be identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpr_devtools.client import Endpoint, exchange, logon
from cpr_devtools.migration import migrate_register
from cpr_mainframe.register import quirks
from cpr_mainframe.register.generate import persons as generated_persons
from cpr_services.server import ModernServer
from emulator_harness import DEMO_OFF4, DEMO_PRIV, DemoUser, running_emulator
from gateway.backends.grpc import GrpcBackend
from gateway.backends.grpc_config import GrpcBackendConfig, grpc_target
from gateway.codec import LogonAnswer, LogonRequest, LookupRequest
from gateway.codec.headers import HEADER_LENGTH, MAX_DATA_LENGTH, answer_with_token
from gateway.codec.records import OFF4_LAYOUTS
from gateway.errors import BackendTimeout, BackendUnavailable
from gateway.model import FejlNr

#: The default register of `make run`: the parity bar covers every person of it.
DEFAULT_REGISTER = 10_000
#: Concurrent lookups per side; a 2-core machine gains nothing from more.
CLIENTS = 16


@dataclass(frozen=True, slots=True)
class Sides:
    """The emulator (legacy) and the adapter over the modern services (modern)."""

    legacy: Endpoint
    modern: GrpcBackend
    server: ModernServer
    pnrs: list[str]


@asynccontextmanager
async def both_sides(
    tmp_path: Path, persons: int = 300, delay: float = 0.0
) -> AsyncIterator[Sides]:
    """A plaintext emulator and the modern services over the same register."""
    async with running_emulator(persons=persons, tls=False, workdir=tmp_path / "emu") as emu:
        store = tmp_path / "modern.sqlite"
        migrate_register(emu.config.register, store, progress=False)
        server = ModernServer(emu.config, store, delay=delay)
        port = await server.start()
        config = GrpcBackendConfig("persons-v2", grpc_target(f"127.0.0.1:{port}"), None)
        backend = GrpcBackend.from_config(config)
        try:
            yield Sides(emu.endpoint, backend, server, emu.pnrs())
        finally:
            await backend.aclose()
            await server.aclose(0)


async def _modern_logon(sides: Sides, user: DemoUser) -> str:
    who = user.who
    request = LogonRequest(who.transaction, who.customer, who.user, user.password)
    answer = LogonAnswer.decode(await sides.modern.call(request, request.encode(), deadline=5))
    assert answer.fejlnr is FejlNr.OK
    return answer.token


async def _compare(sides: Sides, user: DemoUser, pnrs: list[str], **fields: str) -> int:
    """Look each PNR up on both sides; returns how many answers were byte-identical."""
    legacy_token = await logon(sides.legacy, user.who, user.password)
    modern_token = await _modern_logon(sides, user)
    who = user.who
    slots = asyncio.Semaphore(CLIENTS)
    same = 0

    async def one(pnr: str) -> None:
        nonlocal same
        legacy = LookupRequest(who.transaction, who.customer, legacy_token, who.user, pnr, **fields)
        modern = LookupRequest(who.transaction, who.customer, modern_token, who.user, pnr, **fields)
        async with slots:
            expected = await exchange(sides.legacy, legacy.encode())
            got = await sides.modern.call(modern, modern.encode(), deadline=10)
        assert answer_with_token(got, legacy_token) == expected, f"person #{pnrs.index(pnr)}"
        same += 1

    await asyncio.gather(*(one(pnr) for pnr in pnrs))
    return same


@pytest.mark.slow
# One loop: this checks translation over every person, not transports (two minutes a loop).
@pytest.mark.asyncio(loop_factories=["uvloop"])
@pytest.mark.parametrize("user", [DEMO_PRIV, DEMO_OFF4], ids=["PRIV", "OFF4"])
async def test_parity_over_the_whole_default_register(tmp_path: Path, user: DemoUser) -> None:
    """Every person of the 10,000-person default register answers the same on both sides."""
    async with both_sides(tmp_path, persons=DEFAULT_REGISTER) as sides:
        assert len(sides.pnrs) >= DEFAULT_REGISTER
        assert await _compare(sides, user, sides.pnrs) == len(sides.pnrs)


@pytest.mark.parametrize("user", [DEMO_PRIV, DEMO_OFF4], ids=["PRIV", "OFF4"])
async def test_answers_cut_at_the_data_cap_are_the_same_on_both_sides(
    tmp_path: Path, user: DemoUser
) -> None:
    """Persons with many repeated records: the emulator's answer reaches the cap, and the
    modern side gives the very same bytes."""
    pnrs = _quirky(QUIRKY_REGISTER, "many_contacts" if user is DEMO_PRIV else "many_records")
    async with both_sides(tmp_path, persons=QUIRKY_REGISTER) as sides:
        assert await _compare(sides, user, pnrs) == len(pnrs)
        token = await logon(sides.legacy, user.who, user.password)
        for pnr in pnrs:
            request = LookupRequest(user.who.transaction, user.who.customer, token,
                                    user.who.user, pnr)  # fmt: skip
            answer = await exchange(sides.legacy, request.encode())
            assert len(answer) > HEADER_LENGTH + MAX_DATA_LENGTH - _LONGEST_REPEAT


async def test_dates_with_day_or_month_00_are_the_same_on_both_sides(tmp_path: Path) -> None:
    """Persons with a partly known date (OFF4 011, 012, 015): the very same bytes."""
    pnrs = _quirky(QUIRKY_REGISTER, "impossible_date")
    async with both_sides(tmp_path, persons=QUIRKY_REGISTER) as sides:
        assert await _compare(sides, DEMO_OFF4, pnrs) == len(pnrs)


#: A register large enough for each quirk kind to occur at the default share.
QUIRKY_REGISTER = 2000


def _quirky(count: int, kind: str) -> list[str]:
    """PNRs of the persons of the ``count``-person register (seed 1) carrying ``kind``."""
    people = quirks.apply(generated_persons(count, seed=1), seed=1)
    pnrs = [p.pnr for p in people if kind in quirks.kinds_of(p)]
    assert len(pnrs) >= 5
    return pnrs


#: The longest record type any register person repeats: a cut answer is at most this short
#: of the cap.
_LONGEST_REPEAT = OFF4_LAYOUTS["006"].length


async def test_errors_and_header_only_answers_match(tmp_path: Path) -> None:
    """05, 10, 11, 14, 17, DATA_TYPE 0 and subscription receipts match the emulator."""
    async with both_sides(tmp_path) as sides:
        pnr = sides.pnrs[0]
        for fields in ({"data_type": "0"}, {"abon_type": "1", "data_type": "0"},
                       {"abon_type": "3", "data_type": "6"}, {"abon_type": "7"},
                       {"data_type": "4"}):  # fmt: skip
            assert await _compare(sides, DEMO_PRIV, [pnr], **fields) == 1
        assert await _compare(sides, DEMO_PRIV, ["3112999999", "", "3199991234"]) == 3
        # OFF4 is not granted to the PRIV demo user: 14 on both sides.
        legacy_token = await logon(sides.legacy, DEMO_PRIV.who, DEMO_PRIV.password)
        modern_token = await _modern_logon(sides, DEMO_PRIV)
        legacy = LookupRequest("OFF4", "0001", legacy_token, "DEMO0001", pnr)
        modern = LookupRequest("OFF4", "0001", modern_token, "DEMO0001", pnr)
        expected = await exchange(sides.legacy, legacy.encode())
        assert expected[22:24] == b"14"
        got = await sides.modern.call(modern, modern.encode(), deadline=5)
        assert answer_with_token(got, legacy_token) == expected


async def test_logon_errors_match(tmp_path: Path) -> None:
    """Wrong password (01), unknown customer (06), unknown session (07): as the mainframe."""
    async with both_sides(tmp_path) as sides:
        who = DEMO_PRIV.who
        for request in (
            LogonRequest(who.transaction, who.customer, who.user, "Wrong#12"),
            LogonRequest(who.transaction, "9999", who.user, DEMO_PRIV.password),
            LogonRequest(who.transaction, who.customer, who.user, DEMO_PRIV.password, "", "9", "5"),
        ):
            expected = await exchange(sides.legacy, request.encode())
            assert await sides.modern.call(request, request.encode(), deadline=5) == expected
        stale = LookupRequest(who.transaction, who.customer, "NoSuchTk", who.user, sides.pnrs[0])
        expected = await exchange(sides.legacy, stale.encode())
        assert expected[22:24] == b"07"
        assert await sides.modern.call(stale, stale.encode(), deadline=5) == expected


async def test_a_stopped_service_is_unavailable(tmp_path: Path) -> None:
    """No server behind the channel: BackendUnavailable (the client gets 09)."""
    async with both_sides(tmp_path) as sides:
        await sides.server.aclose(0)
        request = LogonRequest("PRIV", "0001", "DEMO0001", DEMO_PRIV.password)
        with pytest.raises(BackendUnavailable):
            await sides.modern.call(request, request.encode(), deadline=2)


async def test_a_slow_service_times_out_within_the_deadline(tmp_path: Path) -> None:
    """A service slower than the deadline: BackendTimeout, raised by the deadline, not later."""
    async with both_sides(tmp_path, delay=30.0) as sides:
        request = LogonRequest("PRIV", "0001", "DEMO0001", DEMO_PRIV.password)
        call = asyncio.ensure_future(sides.modern.call(request, request.encode(), deadline=0.2))
        done, _ = await asyncio.wait({call}, timeout=10)  # a hang would fail, not block the suite
        assert call in done
        with pytest.raises(BackendTimeout):
            call.result()


async def test_lookups_at_once_share_calls_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    """Lookups that arrive together go to the services in shared BatchReadPersons calls, and
    each still gets exactly the mainframe's answer for its own user, token and PNR: found,
    unknown (05), not granted (14), stale session (07)."""
    async with both_sides(tmp_path) as sides:
        tokens = {
            user.who.user: (
                await logon(sides.legacy, user.who, user.password),
                await _modern_logon(sides, user),
            )
            for user in (DEMO_PRIV, DEMO_OFF4)
        }
        tokens["stale"] = ("NoSuchTk", "NoSuchTk")
        cases = [(user, pnr) for pnr in sides.pnrs[:40] for user in (DEMO_PRIV, DEMO_OFF4)]
        cases += [(DEMO_PRIV, "0101019999"), (DEMO_OFF4, sides.pnrs[0])]
        stale = (DEMO_PRIV, sides.pnrs[1])
        requests = []
        for index, (user, pnr) in enumerate([*cases, stale]):
            legacy_token, modern_token = tokens["stale" if index == len(cases) else user.who.user]
            who = user.who
            transaction = "PRIV" if index == len(cases) - 1 else who.transaction  # OFF4 user: 14
            requests.append(
                (
                    legacy_token,
                    LookupRequest(transaction, who.customer, legacy_token, who.user, pnr),
                    LookupRequest(transaction, who.customer, modern_token, who.user, pnr),
                )
            )
        got = await asyncio.gather(
            *(sides.modern.call(m, m.encode(), deadline=10) for _t, _l, m in requests)
        )
        for (legacy_token, legacy, _modern), answer in zip(requests, got, strict=True):
            expected = await exchange(sides.legacy, legacy.encode())
            assert answer_with_token(answer, legacy_token) == expected, legacy.pnr[:6]
        fejlnr = {answer[22:24] for answer in got}
        reads = sides.modern.reads
    assert fejlnr == {b"00", b"05", b"14", b"07"}
    assert reads.items_sent == len(requests)
    assert reads.calls_sent < reads.items_sent / 4  # shared calls, not one per lookup


async def test_a_batched_lookup_fails_as_a_call_would(tmp_path: Path) -> None:
    """A lookup whose services are too slow times out by its deadline; one whose services are
    gone is unavailable: the client gets 09 either way, as for any other call."""
    async with both_sides(tmp_path, delay=30.0) as sides:
        request = LookupRequest("PRIV", "0001", "AnyTokn1", "DEMO0001", sides.pnrs[0])
        call = asyncio.ensure_future(sides.modern.call(request, request.encode(), deadline=0.2))
        done, _ = await asyncio.wait({call}, timeout=10)
        assert call in done
        with pytest.raises(BackendTimeout):
            call.result()
    async with both_sides(tmp_path / "stopped") as sides:
        await sides.server.aclose(0)
        with pytest.raises(BackendUnavailable):
            await sides.modern.call(request, request.encode(), deadline=2)
