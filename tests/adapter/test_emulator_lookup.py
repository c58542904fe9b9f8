"""Lookups and subscriptions against a real emulator (spec §3.2, §4.2, §5, §6)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from cpr_devtools.client import Credentials, exchange, logon
from cpr_mainframe import EmulatorConfig, default_config_path, load_config
from emulator_harness import DEMO_OFF4, DEMO_PRIV, RunningEmulator, running_emulator
from gateway.codec import LookupAnswer, LookupRequest
from gateway.model import Family, FejlNr
from gateway.render.task import NameFormat

PRIV = DEMO_PRIV.who


async def lookup_raw(
    emu: RunningEmulator,
    token: str,
    pnr: str,
    *,
    who: Credentials = PRIV,
    abon_type: str = "0",
    data_type: str = "6",
) -> bytes:
    request = LookupRequest(
        who.transaction, who.customer, token, who.user, pnr, abon_type, data_type
    )
    return await exchange(emu.endpoint, request.encode())


async def priv_token(emu: RunningEmulator) -> str:
    return await logon(emu.endpoint, PRIV, DEMO_PRIV.password)


def demo() -> EmulatorConfig:
    return load_config(default_config_path())


async def test_priv_lookup_answers_sealed_records_with_a_true_length() -> None:
    """ABON 0 / DATA 6: header echoing the request, 000 first, 999 last, length field = bytes."""
    async with running_emulator() as emu:
        token = await priv_token(emu)
        pnr = emu.pnrs(1)[0]
        raw = await lookup_raw(emu, token, pnr)
    answer = LookupAnswer.decode(raw, Family.PRIV)  # checks the length field against the bytes
    assert raw[:22] == f"000106{token}DEMO0001".encode()
    assert answer.fejlnr is FejlNr.OK
    types = [record.type for record in answer.records]
    assert types[0] == "000" and types[-1] == "999" and "001" in types
    assert answer.records[1].fields["PNR"] == pnr


async def test_every_person_answers_in_one_piece_within_2908_bytes() -> None:
    """For each of 40 persons the whole answer arrives, its length field matching, ≤ 2908 bytes."""
    async with running_emulator() as emu:
        token = await priv_token(emu)
        for pnr in emu.pnrs(40):
            raw = await lookup_raw(emu, token, pnr)
            assert int(raw[24:28]) == len(raw) <= 2908
            assert LookupAnswer.decode(raw, Family.PRIV).fejlnr is FejlNr.OK


async def test_off4_lookup_delivers_only_the_task_records() -> None:
    """An OFF4 customer whose task lists only 001 and 008 gets 000, 001, 008 (if any), 999."""
    config = demo()
    authority = config.customers[1]
    narrow = replace(
        authority, task=replace(authority.task, off4_records=frozenset({"001", "008"}))
    )
    config = replace(config, customers=(config.customers[0], narrow))
    async with running_emulator(config) as emu:
        token = await logon(emu.endpoint, DEMO_OFF4.who, DEMO_OFF4.password)
        answers = [
            LookupAnswer.decode(await lookup_raw(emu, token, pnr, who=DEMO_OFF4.who), Family.OFF4)
            for pnr in emu.pnrs(20)
        ]
    types = {record.type for answer in answers for record in answer.records}
    assert types == {"000", "001", "008", "999"}


async def test_task_name_format_shapes_the_addressing_name() -> None:
    """The customer's task decides ADRNVN: first_last gives "First Last", no comma."""
    config = demo()
    private = config.customers[0]
    first_last = replace(private, task=replace(private.task, name_format=NameFormat.FIRST_LAST))
    async with running_emulator(replace(config, customers=(first_last,))) as emu:
        token = await priv_token(emu)
        pnr = emu.pnrs(1, status="01")[0]
        answer = LookupAnswer.decode(await lookup_raw(emu, token, pnr), Family.PRIV)
    current = next(record for record in answer.records if record.type == "001")
    name = str(current.fields["ADRNVN"])
    assert name and "," not in name


async def test_opgavenr_is_customer_and_task_suffix() -> None:
    """Record 000 carries OPGAVENR = KUNDENR + the task's two-digit suffix."""
    config = demo()
    private = config.customers[0]
    suffixed = replace(private, task=replace(private.task, task_suffix="07"))
    async with running_emulator(replace(config, customers=(suffixed,))) as emu:
        token = await priv_token(emu)
        raw = await lookup_raw(emu, token, emu.pnrs(1)[0])
    assert raw[28 + 13 : 28 + 19] == b"000107"


async def test_data_type_0_answers_the_header_alone() -> None:
    """ABON 0 / DATA 0 for a known PNR answers 00 and no data: 28 bytes, length 0028."""
    async with running_emulator() as emu:
        token = await priv_token(emu)
        raw = await lookup_raw(emu, token, emu.pnrs(1)[0], data_type="0")
    assert raw == f"000100{token}DEMO0001000028".encode()


async def test_subscribe_with_receipt_then_unsubscribe() -> None:
    """ABON 1 / DATA 0 answers the header as receipt and stores it; ABON 3 removes it."""
    async with running_emulator() as emu:
        token, pnr = await priv_token(emu), emu.pnrs(1)[0]
        created = await lookup_raw(emu, token, pnr, abon_type="1", data_type="0")
        stored = emu.emulator.state.subscriptions.of(1)
        deleted = await lookup_raw(emu, token, pnr, abon_type="3", data_type="0")
        after = emu.emulator.state.subscriptions.of(1)
    assert created == f"000110{token}DEMO0001000028".encode()
    assert deleted == f"000130{token}DEMO0001000028".encode()
    assert (stored, after) == ([pnr], [])


async def test_subscribe_with_data_answers_receipt_and_records() -> None:
    """ABON 1 / DATA 6 answers 00 with the person's records, and the subscription exists."""
    async with running_emulator() as emu:
        token, pnr = await priv_token(emu), emu.pnrs(1)[0]
        answer = LookupAnswer.decode(await lookup_raw(emu, token, pnr, abon_type="1"), Family.PRIV)
        stored = emu.emulator.state.subscriptions.of(1)
    assert answer.fejlnr is FejlNr.OK and answer.abon_type == "1"
    types = [record.type for record in answer.records]
    assert types[0] == "000" and types[-1] == "999" and "001" in types
    assert stored == [pnr]


async def test_subscription_changes_are_idempotent() -> None:
    """Subscribing twice and unsubscribing a PNR not subscribed both answer 00 (project rule)."""
    async with running_emulator() as emu:
        token, (first, second) = await priv_token(emu), emu.pnrs(2)
        twice = [
            await lookup_raw(emu, token, first, abon_type="1", data_type="0") for _ in range(2)
        ]
        never = await lookup_raw(emu, token, second, abon_type="3", data_type="0")
        stored = emu.emulator.state.subscriptions.of(1)
    assert [raw[22:24] for raw in (*twice, never)] == [b"00", b"00", b"00"]
    assert stored == [first]


async def test_subscriptions_are_per_customer() -> None:
    """A subscription of customer 0001 is not one of customer 0002."""
    async with running_emulator() as emu:
        token, pnr = await priv_token(emu), emu.pnrs(1)[0]
        await lookup_raw(emu, token, pnr, abon_type="1", data_type="0")
        of_two = emu.emulator.state.subscriptions.of(2)
    assert of_two == []


async def test_subscriptions_survive_a_restart(tmp_path: Path) -> None:
    """A subscription made before a restart is still there after it (same state file)."""
    async with running_emulator(workdir=tmp_path) as emu:
        token, pnr = await priv_token(emu), emu.pnrs(1)[0]
        raw = await lookup_raw(emu, token, pnr, abon_type="1", data_type="0")
        assert raw[22:24] == b"00"
    async with running_emulator(workdir=tmp_path) as emu:
        stored = emu.emulator.state.subscriptions.of(1)
        created = emu.emulator.state.subscriptions.created(1, pnr)
    assert stored == [pnr]
    assert created is not None and created.tzinfo is not None
    assert created <= dt.datetime.now(dt.UTC)


async def test_tokens_do_not_survive_a_restart(tmp_path: Path) -> None:
    """Tokens live in memory like the mainframe's: after a restart the old one gets 07."""
    async with running_emulator(workdir=tmp_path) as emu:
        token = await priv_token(emu)
    async with running_emulator(workdir=tmp_path) as emu:
        raw = await lookup_raw(emu, token, emu.pnrs(1)[0])
    assert raw[22:24] == b"07"
