"""Logon, locks and password changes against a real emulator (spec §3.1, §4.1, §7)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

from cpr_devtools.client import exchange
from cpr_mainframe import default_config_path, load_config
from emulator_harness import DEMO_PRIV, FakeClock, RunningEmulator, running_emulator
from gateway.codec import LogonAnswer, LogonRequest
from gateway.model import FejlNr

OLD = DEMO_PRIV.password


async def logon(
    emu: RunningEmulator,
    password: str,
    new_password: str = "",
    *,
    customer: str = "0001",
    user: str = "DEMO0001",
) -> LogonAnswer:
    request = LogonRequest("PRIV", customer, user, password, new_password)
    return LogonAnswer.decode(await exchange(emu.endpoint, request.encode()))


async def test_logon_answers_a_token_and_echoes_the_request() -> None:
    """A good logon answers 00 with an 8-character [A-Za-z0-9] token, echoing KUNDENR and user."""
    async with running_emulator() as emu:
        raw = await exchange(emu.endpoint, LogonRequest("PRIV", "0001", "DEMO0001", OLD).encode())
    answer = LogonAnswer.decode(raw)
    assert re.fullmatch(r"[A-Za-z0-9]{8}", answer.token)
    assert raw == f"000190{answer.token}DEMO000100".encode()


async def test_space_padded_customer_number_is_the_same_customer() -> None:
    """KUNDENR `   1` (an old client's padding) logs on as 0001 and is echoed as sent."""
    async with running_emulator() as emu:
        raw = await exchange(emu.endpoint, LogonRequest("PRIV", "   1", "DEMO0001", OLD).encode())
    assert raw.startswith(b"   190") and raw.endswith(b"00")


async def test_short_user_id_padded_on_the_wire() -> None:
    """A user id shorter than 8 characters arrives space-padded and is still found."""
    config = load_config(default_config_path())
    first = config.customers[0]
    short = replace(first, users=(replace(first.users[0], id="ABC"),))
    async with running_emulator(replace(config, customers=(short,))) as emu:
        answer = await logon(emu, OLD, user="ABC")
    assert answer.fejlnr is FejlNr.OK


async def test_five_failures_in_a_row_lock_the_user() -> None:
    """After 5 wrong passwords in a row even the right one answers 01."""
    async with running_emulator() as emu:
        for _ in range(5):
            assert (await logon(emu, "Wrong#12")).fejlnr is FejlNr.BAD_CREDENTIALS
        locked = await logon(emu, OLD)
        stored = emu.emulator.state.user(1, "DEMO0001")
    assert stored is not None and stored.locked
    assert (locked.fejlnr, locked.token) == (FejlNr.BAD_CREDENTIALS, "")


async def test_a_good_logon_ends_a_run_of_failures() -> None:
    """4 failures, a success, then 4 more failures leave the user unlocked: only a row counts."""
    async with running_emulator() as emu:
        for _ in range(4):
            await logon(emu, "Wrong#12")
        assert (await logon(emu, OLD)).fejlnr is FejlNr.OK
        for _ in range(4):
            await logon(emu, "Wrong#12")
        answer = await logon(emu, OLD)
    assert answer.fejlnr is FejlNr.OK


async def test_change_password_then_log_on_with_the_new_one() -> None:
    """A valid change answers 00 with a token; the new password works and the old one is 01."""
    async with running_emulator() as emu:
        changed = await logon(emu, OLD, "New#5678")
        with_new = await logon(emu, "New#5678")
        with_old = await logon(emu, OLD)
    assert changed.fejlnr is FejlNr.OK and len(changed.token) == 8
    assert with_new.fejlnr is FejlNr.OK
    assert with_old.fejlnr is FejlNr.BAD_CREDENTIALS


async def test_change_with_wrong_current_password_is_01() -> None:
    """A change needs the right current password; else 01 and nothing changes."""
    async with running_emulator() as emu:
        answer = await logon(emu, "Wrong#12", "New#5678")
        still = await logon(emu, OLD)
    assert (answer.fejlnr, still.fejlnr) == (FejlNr.BAD_CREDENTIALS, FejlNr.OK)


async def test_at_most_one_change_per_24_hours() -> None:
    """A second change within 24 hours answers 03; a day later it succeeds."""
    clock = FakeClock()
    async with running_emulator(clock=clock) as emu:
        first = await logon(emu, OLD, "New#5678")
        clock.advance(dt.timedelta(hours=23))
        too_soon = await logon(emu, "New#5678", "New#9999")
        clock.advance(dt.timedelta(hours=1))
        next_day = await logon(emu, "New#5678", "New#9999")
    assert (first.fejlnr, too_soon.fejlnr, next_day.fejlnr) == (
        FejlNr.OK,
        FejlNr.PASSWORD_RULES,
        FejlNr.OK,
    )


async def test_a_password_used_before_is_refused() -> None:
    """Changing back to an earlier password answers 03, even days later; so does the current one."""
    clock = FakeClock()
    async with running_emulator(clock=clock) as emu:
        assert (await logon(emu, OLD, "New#5678")).fejlnr is FejlNr.OK
        clock.advance(dt.timedelta(days=2))
        back = await logon(emu, "New#5678", OLD)
        same = await logon(emu, "New#5678", "New#5678")
    assert (back.fejlnr, same.fejlnr) == (FejlNr.PASSWORD_RULES, FejlNr.PASSWORD_RULES)


async def test_expired_password_can_be_renewed_in_the_same_logon() -> None:
    """After 90 days a logon with a valid new password answers 00; the next plain logon too."""
    clock = FakeClock()
    async with running_emulator(clock=clock) as emu:
        clock.advance(dt.timedelta(days=91))
        renewed = await logon(emu, OLD, "New#5678")
        after = await logon(emu, "New#5678")
    assert (renewed.fejlnr, after.fejlnr) == (FejlNr.OK, FejlNr.OK)


async def test_expired_password_and_a_bad_new_one_is_03() -> None:
    """After 90 days a new password breaking §7 answers 03, not 02."""
    clock = FakeClock()
    async with running_emulator(clock=clock) as emu:
        clock.advance(dt.timedelta(days=91))
        answer = await logon(emu, OLD, "short#1")
    assert answer.fejlnr is FejlNr.PASSWORD_RULES


async def test_password_change_and_lock_survive_a_restart(tmp_path: Path) -> None:
    """Password digests and locks live in the state file, not in memory."""
    async with running_emulator(workdir=tmp_path) as emu:
        assert (await logon(emu, OLD, "New#5678")).fejlnr is FejlNr.OK
    async with running_emulator(workdir=tmp_path) as emu:
        changed = await logon(emu, "New#5678")
        for _ in range(5):
            await logon(emu, "Wrong#12")
    async with running_emulator(workdir=tmp_path) as emu:
        locked = await logon(emu, "New#5678")
    assert (changed.fejlnr, locked.fejlnr) == (FejlNr.OK, FejlNr.BAD_CREDENTIALS)


async def test_no_password_in_the_state_file(tmp_path: Path) -> None:
    """The state file holds digests only: neither the seeded nor a chosen password appears."""
    async with running_emulator(workdir=tmp_path) as emu:
        assert (await logon(emu, OLD, "New#5678")).fejlnr is FejlNr.OK
    data = (tmp_path / "emulator-state.sqlite").read_bytes()
    assert OLD.encode() not in data
    assert b"New#5678" not in data
