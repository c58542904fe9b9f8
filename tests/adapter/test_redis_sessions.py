"""The shared session store against a real redis-server: what two processes see of each
other's sessions, what Redis holds, and what a down or frozen Redis costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.observe.events import EventBus, SessionStoreCall
from gateway.sessions.redis_store import (
    KEY_PREFIX,
    RETRY_AFTER_S,
    RedisSessions,
    read_password,
    session_key,
)
from gateway.sessions.table import Session, SessionBroker
from redis_harness import RedisServer, running_redis

IDLE_S = 600.0
TIMEOUT_S = 0.2
#: Only a hang detector: a call that does not come back within this is a hang.
HANG_S = 10.0
SESSION = Session(4711, "CPRUSER1", "mainframe", {"mainframe": "Tok00001", "persons-v2": "mod-77"})


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Calls:
    """Every SessionStoreCall the store emitted, as (call, outcome)."""

    def __init__(self, bus: EventBus) -> None:
        self.seen: list[tuple[str, str]] = []
        bus.subscribe(self._on)

    def _on(self, event: object) -> None:
        if isinstance(event, SessionStoreCall):
            self.seen.append((event.call, event.outcome))


class Process:
    """What one gateway process has: its table, its bus and its side of the store."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.table = SessionBroker(idle_s=IDLE_S, clock=clock)
        self.bus = EventBus()
        self.calls = Calls(self.bus)
        self.store = RedisSessions(url, self.table, self.bus, timeout_s=TIMEOUT_S, clock=clock)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path / "redis") as server:
        yield server


def _open(process: Process, token: str = "Tok00001") -> Session:
    return process.table.open(token, SESSION.customer, SESSION.user, SESSION.home, SESSION.tokens)


async def test_a_session_opened_in_one_process_is_found_by_another(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a, b = Process(redis_server.url, clock), Process(redis_server.url, clock)
    try:
        await a.store.opened("Tok00001", _open(a))
        assert b.table.live("Tok00001") is None
        assert await b.store.fetch("Tok00001")
        found = b.table.find("Tok00001", 4711, "CPRUSER1")
        assert found is not None and dict(found.tokens) == dict(SESSION.tokens)
        assert found.home == "mainframe"
        assert not await b.store.fetch("Tok00002")  # nobody opened it
        assert a.calls.seen == [("publish", "ok")]
        assert b.calls.seen == [("fetch", "ok"), ("fetch", "miss")]
    finally:
        await a.store.aclose()
        await b.store.aclose()


async def test_redis_holds_a_digest_for_a_key_and_no_password_with_the_idle_time_to_live(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a = Process(redis_server.url, clock)
    client = redis_server.client()
    try:
        await a.store.opened("Tok00001", _open(a))
        keys = [key.decode() async for key in client.scan_iter("*")]
        assert keys == [session_key("Tok00001")]
        assert keys[0].startswith(KEY_PREFIX) and "Tok00001" not in keys[0]
        value = await client.get(keys[0])
        assert value is not None and b"password" not in value.lower()
        assert 0 < await client.ttl(keys[0]) <= IDLE_S
    finally:
        await client.aclose()
        await a.store.aclose()


async def test_a_07_rewrites_the_stored_session_and_one_from_home_deletes_it(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a, b = Process(redis_server.url, clock), Process(redis_server.url, clock)
    client = redis_server.client()
    try:
        await a.store.opened("Tok00001", _open(a))
        await a.store.forgot("Tok00001", a.table.forget("Tok00001", "persons-v2"))
        assert await b.store.fetch("Tok00001")
        left = b.table.live("Tok00001")
        assert left is not None and left.token_for("persons-v2") is None
        assert 0 < await client.ttl(session_key("Tok00001")) <= IDLE_S  # kept its expiry
        await a.store.forgot("Tok00001", a.table.forget("Tok00001", "mainframe"))
        assert await client.exists(session_key("Tok00001")) == 0
    finally:
        await client.aclose()
        await a.store.aclose()
        await b.store.aclose()


async def test_use_renews_the_stored_expiry_at_most_once_per_sixtieth_of_it(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a = Process(redis_server.url, clock)
    client = redis_server.client()
    key = session_key("Tok00001")
    try:
        await a.store.opened("Tok00001", _open(a))
        await client.expire(key, 5)  # as if most of the idle time had passed
        a.store.used("Tok00001")  # renewed moments ago (by the logon): not again yet
        await a.store.aclose()  # lets renewals on their way finish
        assert await client.ttl(key) <= 5
        a = Process(redis_server.url, clock)
        a.store.used("Tok00001")  # never renewed by this process: renews
        await a.store.aclose()
        assert await client.ttl(key) > 5
        assert a.calls.seen == [("touch", "ok")]
    finally:
        await client.aclose()


async def test_a_stopped_redis_is_counted_skipped_for_a_moment_and_used_again_once_back(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a, b = Process(redis_server.url, clock), Process(redis_server.url, clock)
    try:
        await redis_server.stop()
        async with asyncio.timeout(HANG_S):
            await a.store.opened("Tok00001", _open(a))  # the logon still answers
            assert not await b.store.fetch("Tok00001")
            assert not await b.store.fetch("Tok00001")
        assert a.calls.seen == [("publish", "error")]
        assert b.calls.seen == [("fetch", "error"), ("fetch", "skipped")]
        await redis_server.start()  # empty: what was published while it was down is lost
        clock.advance(RETRY_AFTER_S)
        await a.store.opened("Tok00001", a.table.live("Tok00001") or SESSION)
        assert await b.store.fetch("Tok00001")
    finally:
        await a.store.aclose()
        await b.store.aclose()


async def test_a_frozen_redis_costs_a_call_its_deadline_not_a_hang(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a = Process(redis_server.url, clock)
    try:
        await a.store.opened("Tok00001", _open(a))  # connected while Redis answered
        redis_server.freeze()
        async with asyncio.timeout(HANG_S):
            assert not await a.store.fetch("Tok00001")
        assert a.calls.seen[-1] == ("fetch", "timeout")
        redis_server.thaw()
        clock.advance(RETRY_AFTER_S)
        assert await a.store.fetch("Tok00001")
    finally:
        await a.store.aclose()


async def test_a_value_not_ours_under_our_prefix_is_an_error_not_a_session(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    a = Process(redis_server.url, clock)
    client = redis_server.client()
    try:
        await client.set(session_key("Tok00001"), b"[1, 2, 3]")
        assert not await a.store.fetch("Tok00001")
        assert a.calls.seen == [("fetch", "ok"), ("fetch", "error")]
        assert a.table.live("Tok00001") is None
    finally:
        await client.aclose()
        await a.store.aclose()


async def test_a_password_from_a_file_opens_a_store_that_requires_one(tmp_path: Path) -> None:
    """sessions.password_file: the URL carries no password, the mounted Secret does."""
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret-for-tests\n")
    async with running_redis(tmp_path / "redis", password="s3cret-for-tests") as server:
        clock = FakeClock()
        table = SessionBroker(idle_s=IDLE_S, clock=clock)
        bus = EventBus()
        calls = Calls(bus)
        store = RedisSessions(server.url, table, bus, timeout_s=TIMEOUT_S,
                              password=read_password(secret), clock=clock)  # fmt: skip
        refused = RedisSessions(server.url, table, EventBus(), timeout_s=TIMEOUT_S, clock=clock)
        try:
            await store.opened("Tok00001", SESSION)
            assert calls.seen == [("publish", "ok")]
            assert not await refused.fetch("Tok00001")  # no password: refused, not a hang
        finally:
            await store.aclose()
            await refused.aclose()


def test_an_unreadable_password_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_password(tmp_path / "missing")
    assert caught.value.problems == [
        f"sessions.password_file {tmp_path / 'missing'}: No such file or directory"
    ]
