"""Logons and password digests on a real state file: one digest per logon whoever asks, and
digests of another cost (scrypt of before, a raised cost) re-hashed at the next good logon."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpr_accounts import digests
from cpr_accounts.auth import Authenticator
from cpr_accounts.digests import PasswordCost, Scrypt, scheme_of
from cpr_accounts.state import StateStore
from cpr_devtools.client import exchange
from emulator_harness import running_emulator
from gateway.codec import LogonAnswer, LogonRequest
from gateway.model import FejlNr

T0 = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
CHEAP = PasswordCost(memory_kib=8, iterations=1, lanes=1)
RAISED = PasswordCost(memory_kib=16, iterations=1, lanes=1)
SALT = b"s" * 16
OLD_N = 1024


@pytest.fixture
def derived(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The scheme of every digest derived (the real derivation runs; calls are only noted)."""
    calls: list[object] = []
    real = digests.derive

    def noting(password: str, salt: bytes, scheme: digests.Scheme) -> bytes:
        calls.append(scheme)
        return real(password, salt, scheme)

    monkeypatch.setattr(digests, "derive", noting)
    yield calls


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore.open(tmp_path / "state.sqlite")
    yield opened
    opened.close()


def seed_scrypt(store: StateStore, password: str) -> bytes:
    """A user as stored before Argon2id: a 32-byte scrypt digest, N in the cost column."""
    old = hashlib.scrypt(password.encode(), salt=SALT, n=OLD_N, r=8, p=1, dklen=32)
    store.add_user(1, "U", salt=SALT, cost=OLD_N, digest=old, now=T0)
    return old


async def test_an_unknown_user_costs_one_digest_as_a_known_one_does(
    store: StateStore, derived: list[object]
) -> None:
    """No such user, a wrong password and a locked user: each logon derives one digest."""
    auth = Authenticator(store, CHEAP)
    await auth.seed(1, "U", "Demo#123", T0)
    derived.clear()
    assert not await auth.verify(1, "NOBODY", "Demo#123")
    assert derived == [CHEAP]
    assert not await auth.verify(1, "U", "Wrong#12")
    assert derived == [CHEAP] * 2
    for _ in range(4):
        await auth.verify(1, "U", "Wrong#12")
    derived.clear()
    assert not await auth.verify(1, "U", "Demo#123")  # locked: refused, after the same work
    assert derived == [CHEAP]


async def test_the_emulator_spends_a_digest_on_a_user_id_it_does_not_know(
    derived: list[object],
) -> None:
    """A logon naming a user id absent from the config answers 01 after one digest."""
    async with running_emulator() as emu:
        derived.clear()
        request = LogonRequest("PRIV", "0001", "NOBODY", "Demo#123", "")
        answer = LogonAnswer.decode(await exchange(emu.endpoint, request.encode()))
    assert answer.fejlnr is FejlNr.BAD_CREDENTIALS
    assert len(derived) == 1


async def test_an_scrypt_digest_verifies_and_is_rehashed_at_the_next_good_logon(
    store: StateStore, derived: list[object]
) -> None:
    """The old digest still lets the user in; afterwards the user's digest is Argon2id at the
    configured cost, the password's age unchanged, and the next logon derives only that."""
    seed_scrypt(store, "Demo#123")
    auth = Authenticator(store, CHEAP)
    assert not await auth.verify(1, "U", "Wrong#12")
    before = store.user(1, "U")
    assert before is not None and scheme_of(before.digest, before.cost) == Scrypt(OLD_N)
    assert await auth.verify(1, "U", "Demo#123")
    after = store.user(1, "U")
    assert after is not None
    assert scheme_of(after.digest, after.cost) == CHEAP
    assert (after.set_at, after.changed_at, after.failures) == (T0, None, 0)
    derived.clear()
    assert await auth.verify(1, "U", "Demo#123")
    assert derived == [CHEAP]


async def test_a_raised_cost_rehashes_at_the_next_good_logon(store: StateStore) -> None:
    """Digests made at a lower Argon2id cost are re-made at the raised one, and still verify."""
    await Authenticator(store, CHEAP).seed(1, "U", "Demo#123", T0)
    raised = Authenticator(store, RAISED)
    assert await raised.verify(1, "U", "Demo#123")
    state = store.user(1, "U")
    assert state is not None and scheme_of(state.digest, state.cost) == RAISED
    assert await raised.verify(1, "U", "Demo#123")


async def test_passwords_of_the_scrypt_era_still_count_as_used_before(store: StateStore) -> None:
    """After a re-hash, neither the current password nor one from before may be chosen again."""
    seed_scrypt(store, "Demo#123")
    auth = Authenticator(store, CHEAP)
    assert await auth.verify(1, "U", "Demo#123")  # re-hashed here
    assert await auth.renew(1, "U", "Demo#123", T0) is FejlNr.PASSWORD_RULES
    assert await auth.renew(1, "U", "New#5678", T0) is FejlNr.OK
    later = T0 + dt.timedelta(days=2)
    assert await auth.verify(1, "U", "New#5678")
    assert await auth.renew(1, "U", "Demo#123", later) is FejlNr.PASSWORD_RULES
    assert await auth.renew(1, "U", "New#9999", later) is FejlNr.OK


async def test_a_rehash_never_overwrites_a_password_changed_meanwhile(store: StateStore) -> None:
    """The re-hash replaces only the digest it verified."""
    old = seed_scrypt(store, "Demo#123")
    auth = Authenticator(store, CHEAP)
    assert await auth.renew(1, "U", "New#5678", T0) is FejlNr.OK  # the change came first
    assert not store.rehash(1, "U", old=old, new=b"x" * 60)
    assert await auth.verify(1, "U", "New#5678")
