"""The emulator's SQLite state store and authenticator on real files in tmp_path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cpr_accounts.auth import Authenticator
from cpr_accounts.digests import PasswordCost
from cpr_accounts.state import NO_SCRYPT, StateStore
from gateway.errors import ConfigError
from gateway.model import FejlNr

T0 = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
COST = PasswordCost(memory_kib=8, iterations=1, lanes=1)


async def seeded(path: Path) -> tuple[StateStore, Authenticator]:
    store = StateStore.open(path)
    auth = Authenticator(store, COST)
    await auth.seed(1, "U", "Demo#123", T0)
    return store, auth


async def test_seeding_happens_once(tmp_path: Path) -> None:
    """A user already in the state keeps its stored password when seeded again."""
    store, auth = await seeded(tmp_path / "s.sqlite")
    try:
        assert await auth.renew(1, "U", "New#5678", T0) is FejlNr.OK
        assert not await auth.seed(1, "U", "Demo#123", T0 + dt.timedelta(days=1))
        assert await auth.verify(1, "U", "New#5678")
        assert not await auth.verify(1, "U", "Demo#123")
    finally:
        store.close()


async def test_fifth_failure_locks_and_unlock_lifts_it(tmp_path: Path) -> None:
    """Failures count up to 5 and lock; unlock() restores the right password's access."""
    store, auth = await seeded(tmp_path / "s.sqlite")
    try:
        for expected in range(1, 6):
            assert not await auth.verify(1, "U", "Wrong#12")
            state = store.user(1, "U")
            assert state is not None and state.failures == expected
            assert state.locked is (expected == 5)
        assert not await auth.verify(1, "U", "Demo#123")
        store.unlock(1, "U")
        assert await auth.verify(1, "U", "Demo#123")
    finally:
        store.close()


async def test_state_survives_reopening(tmp_path: Path) -> None:
    """Passwords, failure counts and subscriptions are on disk when the file is reopened."""
    path = tmp_path / "s.sqlite"
    store, auth = await seeded(path)
    await auth.verify(1, "U", "Wrong#12")
    assert store.subscriptions.add(1, "0101601234", T0)
    store.close()
    reopened = StateStore.open(path)
    try:
        state = reopened.user(1, "U")
        assert state is not None and (state.failures, state.set_at) == (1, T0)
        assert reopened.subscriptions.of(1) == ["0101601234"]
        assert reopened.subscriptions.created(1, "0101601234") == T0
    finally:
        reopened.close()


async def test_subscription_add_and_remove_report_change(tmp_path: Path) -> None:
    """add/remove say whether anything changed, which makes both idempotent."""
    store = StateStore.open(tmp_path / "s.sqlite")
    try:
        assert store.subscriptions.add(1, "0101601234", T0)
        assert not store.subscriptions.add(1, "0101601234", T0)
        assert store.subscriptions.remove(1, "0101601234")
        assert not store.subscriptions.remove(1, "0101601234")
    finally:
        store.close()


def test_a_file_that_is_not_a_state_store_is_a_config_error(tmp_path: Path) -> None:
    """Pointing `state` at some other file fails at start with a ConfigError."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just text that is long enough to have a header" * 10)
    with pytest.raises(ConfigError, match="state:"):
        StateStore.open(path)


def test_repr_never_shows_digests(tmp_path: Path) -> None:
    """A UserState in a log line or traceback shows no salt or digest."""
    store = StateStore.open(tmp_path / "s.sqlite")
    try:
        store.add_user(1, "U", salt=b"s" * 16, cost=NO_SCRYPT, digest=b"d" * 32, now=T0)
        state = store.user(1, "U")
        assert state is not None
        assert "ddd" not in repr(state) and "sss" not in repr(state)
    finally:
        store.close()
