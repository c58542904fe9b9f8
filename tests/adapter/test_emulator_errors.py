"""Every FEJLNR of spec §4.3 in the situation it describes, from a real emulator over TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import replace

import pytest

from cpr_devtools.client import Credentials, exchange
from cpr_mainframe import EmulatorConfig, default_config_path, load_config
from cpr_mainframe.config import Window
from emulator_harness import (
    DEMO_OFF4,
    DEMO_PRIV,
    FakeClock,
    RunningEmulator,
    running_emulator,
)
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, LookupRequest
from gateway.model import Family, FejlNr

PRIV = DEMO_PRIV.who


async def logon(emu: RunningEmulator, who: Credentials, password: str) -> LogonAnswer:
    request = LogonRequest(who.transaction, who.customer, who.user, password)
    return LogonAnswer.decode(await exchange(emu.endpoint, request.encode()))


async def token_of(emu: RunningEmulator, who: Credentials = PRIV) -> str:
    password = DEMO_PRIV.password if who.customer == PRIV.customer else DEMO_OFF4.password
    answer = await logon(emu, who, password)
    assert answer.fejlnr is FejlNr.OK
    return answer.token


async def lookup(
    emu: RunningEmulator,
    token: str,
    pnr: str,
    *,
    who: Credentials = PRIV,
    abon_type: str = "0",
    data_type: str = "6",
) -> LookupAnswer:
    request = LookupRequest(
        who.transaction, who.customer, token, who.user, pnr, abon_type, data_type
    )
    raw = await exchange(emu.endpoint, request.encode())
    return LookupAnswer.decode(raw, Family.PRIV if who.transaction == "PRIV" else Family.OFF4)


def demo() -> EmulatorConfig:
    return load_config(default_config_path())


def assert_lookup_error(answer: LookupAnswer, fejlnr: FejlNr) -> None:
    assert answer.fejlnr is fejlnr
    assert answer.records == ()


async def test_01_wrong_password_gets_blank_token() -> None:
    """A wrong password answers 01 with a blank token."""
    async with running_emulator() as emu:
        answer = await logon(emu, PRIV, "Wrong#12")
    assert (answer.fejlnr, answer.token) == (FejlNr.BAD_CREDENTIALS, "")


async def test_01_unknown_user() -> None:
    """A user id the customer does not have answers 01, like a wrong password."""
    async with running_emulator() as emu:
        answer = await logon(emu, replace(PRIV, user="NOBODY"), DEMO_PRIV.password)
    assert answer.fejlnr is FejlNr.BAD_CREDENTIALS


async def test_02_password_older_than_90_days() -> None:
    """90 days and a bit after the password was set, a logon without a new one gets 02."""
    clock = FakeClock()
    async with running_emulator(clock=clock) as emu:
        clock.advance(dt.timedelta(days=90, minutes=1))
        answer = await logon(emu, PRIV, DEMO_PRIV.password)
    assert (answer.fejlnr, answer.token) == (FejlNr.PASSWORD_EXPIRED, "")


async def test_03_new_password_breaking_the_rules() -> None:
    """A password change to a password without a digit answers 03."""
    async with running_emulator() as emu:
        request = LogonRequest("PRIV", "0001", "DEMO0001", DEMO_PRIV.password, "Abcdefg#")
        answer = LogonAnswer.decode(await exchange(emu.endpoint, request.encode()))
    assert (answer.fejlnr, answer.token) == (FejlNr.PASSWORD_RULES, "")


async def test_04_maintenance_switch() -> None:
    """`maintenance: true` answers 04 to logons and lookups alike."""
    async with running_emulator(replace(demo(), maintenance=True)) as emu:
        answer = await logon(emu, PRIV, DEMO_PRIV.password)
        looked = await lookup(emu, "Tk3nAbCd", "0101601234")
    assert answer.fejlnr is FejlNr.CLOSED
    assert_lookup_error(looked, FejlNr.CLOSED)


async def test_04_daily_window_in_copenhagen_time() -> None:
    """A window of 02:00-03:00 Copenhagen time closes the service at 01:30 UTC in winter."""
    clock = FakeClock(dt.datetime(2026, 1, 15, 0, 30, tzinfo=dt.UTC))  # 01:30 in Copenhagen
    window = Window(dt.time(1, 0), dt.time(2, 0))
    async with running_emulator(replace(demo(), maintenance_windows=(window,)), clock=clock) as emu:
        inside = await logon(emu, PRIV, DEMO_PRIV.password)
        clock.advance(dt.timedelta(hours=1))  # 02:30 in Copenhagen
        after = await logon(emu, PRIV, DEMO_PRIV.password)
    assert (inside.fejlnr, after.fejlnr) == (FejlNr.CLOSED, FejlNr.OK)


async def test_05_well_formed_unknown_pnr() -> None:
    """A PNR with a valid date that the register does not hold answers 05, header alone."""
    async with running_emulator() as emu:
        known = set(emu.pnrs())
        unknown = next(p for p in (f"010170{n:04d}" for n in range(10_000)) if p not in known)
        answer = await lookup(emu, await token_of(emu), unknown)
    assert_lookup_error(answer, FejlNr.PNR_UNKNOWN)


async def test_06_unknown_customer_on_logon_and_lookup() -> None:
    """KUNDENR 9999 is no customer: 06 for both kinds of request."""
    stranger = replace(PRIV, customer="9999")
    async with running_emulator() as emu:
        answer = await logon(emu, stranger, DEMO_PRIV.password)
        looked = await lookup(emu, "Tk3nAbCd", emu.pnrs(1)[0], who=stranger)
    assert answer.fejlnr is FejlNr.CUSTOMER_UNKNOWN
    assert_lookup_error(looked, FejlNr.CUSTOMER_UNKNOWN)


async def test_07_unknown_token() -> None:
    """A token the emulator never issued answers 07."""
    async with running_emulator() as emu:
        answer = await lookup(emu, "Tk3nAbCd", emu.pnrs(1)[0])
    assert_lookup_error(answer, FejlNr.NEW_LOGON)


async def test_07_token_idle_too_long() -> None:
    """A token unused for the configured idle time answers 07; each use restarts the time."""
    clock = FakeClock()
    async with running_emulator(clock=clock) as emu:
        token, pnr = await token_of(emu), emu.pnrs(1)[0]
        clock.advance(dt.timedelta(minutes=29))
        kept = await lookup(emu, token, pnr)
        clock.advance(dt.timedelta(minutes=29))
        kept_again = await lookup(emu, token, pnr)
        clock.advance(dt.timedelta(minutes=30))
        expired = await lookup(emu, token, pnr)
    assert (kept.fejlnr, kept_again.fejlnr) == (FejlNr.OK, FejlNr.OK)
    assert_lookup_error(expired, FejlNr.NEW_LOGON)


async def test_07_token_of_another_customer_or_user() -> None:
    """A token issued to DEMO0001 of 0001 is no good for 0002 or for another user of 0001."""
    config = demo()
    first = config.customers[0]
    extra = replace(first.users[0], id="OTHER01")
    config = replace(
        config, customers=(replace(first, users=(*first.users, extra)), *config.customers[1:])
    )
    async with running_emulator(config) as emu:
        token, pnr = await token_of(emu), emu.pnrs(1)[0]
        other_customer = await lookup(emu, token, pnr, who=DEMO_OFF4.who)
        other_user = await lookup(emu, token, pnr, who=replace(PRIV, user="OTHER01"))
        owner = await lookup(emu, token, pnr)
    assert_lookup_error(other_customer, FejlNr.NEW_LOGON)
    assert_lookup_error(other_user, FejlNr.NEW_LOGON)
    assert owner.fejlnr is FejlNr.OK


async def test_10_unknown_abon_type() -> None:
    """ABON_TYPE 2 is none of 0, 1, 3: 10."""
    async with running_emulator() as emu:
        answer = await lookup(emu, await token_of(emu), emu.pnrs(1)[0], abon_type="2")
    assert_lookup_error(answer, FejlNr.ABON_TYPE_UNKNOWN)


@pytest.mark.parametrize("data_type", ["1", "5", "X"])
async def test_11_unknown_data_type_on_lookup(data_type: str) -> None:
    """DATA_TYPE other than 0 and 6 answers 11."""
    async with running_emulator() as emu:
        answer = await lookup(emu, await token_of(emu), emu.pnrs(1)[0], data_type=data_type)
    assert_lookup_error(answer, FejlNr.DATA_TYPE_UNKNOWN)


async def test_11_logon_with_data_type_other_than_0() -> None:
    """A logon record must carry DATA_TYPE 0; anything else answers 11."""
    request = LogonRequest("PRIV", "0001", "DEMO0001", DEMO_PRIV.password, data_type="6")
    async with running_emulator() as emu:
        answer = LogonAnswer.decode(await exchange(emu.endpoint, request.encode()))
    assert answer.fejlnr is FejlNr.DATA_TYPE_UNKNOWN


@pytest.mark.parametrize("transaction", ["OFF4", "ADRM", "XXXX"])
async def test_14_transaction_not_granted_at_logon(transaction: str) -> None:
    """DEMO0001 holds PRIV only: OFF4, ADRM and unknown codes answer 14 at logon."""
    async with running_emulator() as emu:
        answer = await logon(emu, replace(PRIV, transaction=transaction), DEMO_PRIV.password)
    assert (answer.fejlnr, answer.token) == (FejlNr.TRANSACTION_DENIED, "")


async def test_14_transaction_not_granted_at_lookup() -> None:
    """A valid PRIV token does not open OFF4 lookups for a user without OFF4."""
    async with running_emulator() as emu:
        token = await token_of(emu)
        answer = await lookup(emu, token, emu.pnrs(1)[0], who=replace(PRIV, transaction="OFF4"))
    assert_lookup_error(answer, FejlNr.TRANSACTION_DENIED)


async def test_16_source_address_outside_allow_list() -> None:
    """A customer allowing only 10.0.0.0/8 refuses a loopback client with 16."""
    config = demo()
    first = config.customers[0]
    only_ten = replace(first, allow=(ipaddress.ip_network("10.0.0.0/8"),))
    config = replace(config, customers=(only_ten, *config.customers[1:]))
    async with running_emulator(config) as emu:
        answer = await logon(emu, PRIV, DEMO_PRIV.password)
    assert answer.fejlnr is FejlNr.IP_DENIED


async def test_17_blank_pnr() -> None:
    """A lookup with a blank PNR field answers 17."""
    async with running_emulator() as emu:
        answer = await lookup(emu, await token_of(emu), "")
    assert_lookup_error(answer, FejlNr.PNR_MISSING)


@pytest.mark.parametrize(
    "pnr", ["12345", "3201601234", "0113601234", "2902011234", "01016O1234", " 101601234"]
)
async def test_17_malformed_pnr(pnr: str) -> None:
    """Project rule: a PNR not 10 digits or not starting with a date answers 17, never 05."""
    async with running_emulator() as emu:
        answer = await lookup(emu, await token_of(emu), pnr)
    assert_lookup_error(answer, FejlNr.PNR_MISSING)


async def test_error_answer_is_the_28_byte_header_echoing_the_request() -> None:
    """An error answer is the header alone with length 0028, echoing the request's fields."""
    request = LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", "0101601234")
    async with running_emulator() as emu:
        raw = await exchange(emu.endpoint, request.encode())
    assert raw == b"000106Tk3nAbCdDEMO0001070028"


async def test_password_is_checked_before_grants() -> None:
    """A wrong password for an ungranted transaction answers 01, not 14 (no probing)."""
    async with running_emulator() as emu:
        answer = await logon(emu, replace(PRIV, transaction="OFF4"), "Wrong#12")
    assert answer.fejlnr is FejlNr.BAD_CREDENTIALS


async def test_format_is_checked_before_customer() -> None:
    """A lookup with a bad ABON_TYPE and an unknown customer answers 10 (format first)."""
    async with running_emulator() as emu:
        answer = await lookup(emu, "x", "1", who=replace(PRIV, customer="9999"), abon_type="7")
    assert_lookup_error(answer, FejlNr.ABON_TYPE_UNKNOWN)
