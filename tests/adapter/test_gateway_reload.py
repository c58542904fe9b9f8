"""Live reloads: a changed routing.yaml applies without dropping a request; a bad one is refused."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog
from gateway_harness import (
    LOOKUP,
    LOOKUP_ANSWER,
    answering,
    backend_server,
    canned,
    held,
    next_event,
)

from cpr_devtools.client import Endpoint, exchange
from gateway.app import Gateway
from gateway.codec import LookupAnswer, Request
from gateway.config import Match, Route, load_routing
from gateway.dispatch import Dispatcher
from gateway.model import Family, FejlNr
from gateway.observe.events import (
    ConfigRejected,
    ConfigReloaded,
    Event,
    EventBus,
    Lifecycle,
    RequestCompleted,
)
from gateway.observe.logs import configure_logging
from gateway.routing import RouteTable

#: A poll interval short enough that a test waits for the reload event, not for seconds.
POLL_S = 0.02


def _write(path: Path, ports: tuple[int, int], routes: str, admin_port: int = 0) -> Path:
    old, new = ports
    path.write_text(
        f"""\
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: {admin_port}}}
limits: {{read_timeout: 2s, grace_period: 2s}}
backends:
  old: {{kind: legacy, address: "127.0.0.1:{old}", tls: null}}
  new: {{kind: legacy, address: "127.0.0.1:{new}", tls: null}}
routes:
{routes}""",
        encoding="utf-8",
    )
    return path


#: What the new backend answers, so that a client can tell which side answered it.
NEW_ANSWER = LookupAnswer.for_request(LOOKUP, FejlNr.NEW_LOGON).encode(Family.PRIV)
TO_OLD = "  - {name: to-old, match: {}, backend: old, deadline: 5s}\n"
TO_NEW = "  - {name: to-the-new-one, match: {}, backend: new, deadline: 5s}\n"


def _recorder(gateway: Gateway) -> list[Event]:
    events: list[Event] = []
    gateway.bus.subscribe(events.append)
    return events


async def _start(path: Path, watch: float | None = POLL_S) -> tuple[Gateway, Endpoint]:
    gateway = Gateway(load_routing(path), watch_interval=watch)
    _host, port = await gateway.start()
    return gateway, Endpoint("127.0.0.1", port)


async def test_a_changed_file_applies_while_requests_flow(tmp_path: Path) -> None:
    """Every request is answered across the reload; those sent after it go to the new backend."""
    async with (
        backend_server(answering(LOOKUP_ANSWER)) as old,
        backend_server(answering(NEW_ANSWER)) as new,
    ):
        path = _write(tmp_path / "routing.yaml", (old, new), TO_OLD)
        gateway, client = await _start(path)
        answered = next_event(gateway, RequestCompleted)
        reloaded = next_event(gateway, ConfigReloaded)
        answers: list[tuple[bool, bytes]] = []  # (sent after the reload, answer)

        async def flow() -> None:
            while sum(after for after, _ in answers) < 10:
                after = reloaded.is_set()
                answers.append((after, await exchange(client, LOOKUP.encode())))

        try:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(3):
                    tasks.create_task(flow())
                await answered.wait()
                _write(path, (old, new), TO_NEW)
        finally:
            await gateway.aclose()
    assert {answer for _, answer in answers} <= {LOOKUP_ANSWER, NEW_ANSWER}
    assert any(answer == LOOKUP_ANSWER for after, answer in answers if not after)
    assert [answer for after, answer in answers if after] == [NEW_ANSWER] * sum(
        after for after, _ in answers
    )
    assert gateway.metrics.value("cpr_gateway_config_reloads_total", result="ok") == 1


async def test_a_request_in_flight_finishes_on_the_backend_it_started_with(tmp_path: Path) -> None:
    """A reload does not cut a request short: it is answered by the old backend."""
    arrived, release = asyncio.Event(), asyncio.Event()
    new_got: list[bytes] = []
    async with (
        backend_server(held(arrived, release)) as old,
        backend_server(canned(new_got)) as new,
    ):
        path = _write(tmp_path / "routing.yaml", (old, new), TO_OLD)
        gateway, client = await _start(path, watch=None)
        try:
            in_flight = asyncio.create_task(exchange(client, LOOKUP.encode()))
            await arrived.wait()
            _write(path, (old, new), TO_NEW)
            assert await gateway.reload() is True
            assert await exchange(client, LOOKUP.encode()) == LOOKUP_ANSWER
            assert len(new_got) == 1
            assert not in_flight.done()
            release.set()
            assert await in_flight == LOOKUP_ANSWER
        finally:
            await gateway.aclose()


async def test_a_bad_file_is_rejected_and_the_old_table_kept(tmp_path: Path) -> None:
    """Validation problems are reported path-qualified and counted; requests still go old."""
    old_got: list[bytes] = []
    async with backend_server(canned(old_got)) as old, backend_server(canned()) as new:
        path = _write(tmp_path / "routing.yaml", (old, new), TO_OLD)
        gateway, client = await _start(path)
        events = _recorder(gateway)
        rejected = next_event(gateway, ConfigRejected)
        try:
            bad = "  - {name: c, match: {}, split: {key: pnr, backends: {old: 90, new: 5}}, "
            _write(path, (old, new), bad + "deadline: 1s}\n")
            await rejected.wait()
            assert await exchange(client, LOOKUP.encode()) == LOOKUP_ANSWER
        finally:
            await gateway.aclose()
    [event] = [e for e in events if isinstance(e, ConfigRejected)]
    assert event == ConfigRejected(
        "file", ("routes[0].split.backends: percentages add up to 95, not 100",)
    )
    assert len(old_got) == 1
    value = gateway.metrics.value
    assert value("cpr_gateway_config_reloads_total", result="rejected") == 1
    assert value("cpr_gateway_config_reloads_total", result="ok") == 0
    assert value("cpr_gateway_config_last_reload_successful") == 0
    assert gateway.config.routes[0].name == "to-old"


async def test_sighup_reloads_the_file(tmp_path: Path) -> None:
    """SIGHUP to a serving gateway re-reads its file (no watcher running)."""
    path = _write(tmp_path / "routing.yaml", (1, 2), TO_OLD)
    gateway = Gateway(load_routing(path), watch_interval=None)
    listening = next_event(gateway, Lifecycle)
    reloaded = next_event(gateway, ConfigReloaded)
    events = _recorder(gateway)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(gateway.serve(stop))
        await listening.wait()
        _write(path, (1, 2), TO_NEW)
        os.kill(os.getpid(), signal.SIGHUP)
        await reloaded.wait()
        stop.set()
    [event] = [e for e in events if isinstance(e, ConfigReloaded)]
    assert event.trigger == "sighup"
    assert [line.split(":")[0] for line in event.changes] == [
        "logon",
        "change_password",
        "lookup",
        "subscribe",
        "unsubscribe",
    ]
    assert gateway.config.routes[0].target == "new"


async def test_an_admin_address_change_waits_for_a_restart(tmp_path: Path) -> None:
    """Routes apply at once; the admin port stays as bound, and the gateway says so."""
    path = _write(tmp_path / "routing.yaml", (1, 2), TO_OLD)
    gateway, _client = await _start(path, watch=None)
    events = _recorder(gateway)
    try:
        bound = gateway.admin_address
        _write(path, (1, 2), TO_NEW, admin_port=bound[1] + 1)
        assert await gateway.reload() is True
        assert gateway.admin_address == bound
        assert gateway.config.admin.port == 0  # the running value, not the file's
        assert gateway.config.routes[0].target == "new"
    finally:
        await gateway.aclose()
    [event] = [e for e in events if isinstance(e, ConfigReloaded)]
    assert event.restart_needed == ("admin",)
    assert event.changes[0] == "admin: changed (takes effect on restart)"
    assert gateway.metrics.value("cpr_gateway_config_restart_pending") == 1


async def test_a_config_built_in_code_cannot_be_reloaded(tmp_path: Path) -> None:
    """Without a source file a reload is refused and counted, never guessed."""
    path = _write(tmp_path / "routing.yaml", (1, 2), TO_OLD)
    gateway = Gateway(replace(load_routing(path), source=None), watch_interval=None)
    await gateway.start()
    try:
        assert await gateway.reload() is False
    finally:
        await gateway.aclose()
    assert gateway.metrics.value("cpr_gateway_config_reloads_total", result="rejected") == 1


class _Backend:
    """A Backend that answers when released and records that it was closed."""

    def __init__(self, name: str, *, released: bool = True) -> None:
        self._name = name
        self.arrived, self.release, self.closed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        if released:
            self.release.set()

    @property
    def name(self) -> str:
        return self._name

    async def call(
        self,
        request: Request,
        raw: bytes,
        *,
        deadline: float,
        origin: str | None = None,
        repeat: bool = False,
    ) -> bytes:
        self.arrived.set()
        await self.release.wait()
        return LOOKUP_ANSWER

    async def aclose(self) -> None:
        self.closed.set()


def _table(backend: str) -> RouteTable:
    return RouteTable([Route("all", Match(), backend, 1.0)])


async def test_a_retired_backend_closes_only_after_its_last_request() -> None:
    """swap(): the dropped backend closes once idle; a backend carried over stays open."""
    old, new, kept = _Backend("old", released=False), _Backend("new"), _Backend("kept")
    dispatcher = Dispatcher(_table("old"), {"old": old, "kept": kept}, EventBus())
    first = asyncio.create_task(dispatcher.handle(LOOKUP, LOOKUP.encode(), peer="test"))
    await old.arrived.wait()
    dispatcher.swap(_table("new"), {"new": new, "kept": kept})
    assert await dispatcher.handle(LOOKUP, LOOKUP.encode(), peer="test") == LOOKUP_ANSWER
    assert new.arrived.is_set()
    assert not old.closed.is_set()
    old.release.set()
    assert await first == LOOKUP_ANSWER
    async with asyncio.timeout(5):  # a guard against a hang, not a speed requirement
        await old.closed.wait()
    assert not kept.closed.is_set() and not new.closed.is_set()
    await dispatcher.aclose()
    assert kept.closed.is_set() and new.closed.is_set()


async def test_an_idle_retired_backend_closes_at_once() -> None:
    """With nothing in flight, a dropped backend is closed by the swap itself."""
    old, new = _Backend("old"), _Backend("new")
    dispatcher = Dispatcher(_table("old"), {"old": old}, EventBus())
    dispatcher.swap(_table("new"), {"new": new})
    async with asyncio.timeout(5):
        await old.closed.wait()
    assert dispatcher.backends == {"new": new}
    await dispatcher.aclose()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logs captured in memory; structlog's defaults are restored afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    structlog.reset_defaults()


async def test_reloads_are_logged_with_their_changes_and_problems(
    tmp_path: Path, log_output: io.StringIO
) -> None:
    """A rejected file logs every problem; an applied one logs what it changed."""
    path = _write(tmp_path / "routing.yaml", (1, 2), TO_OLD)
    gateway, _client = await _start(path, watch=None)
    try:
        _write(path, (1, 2), TO_OLD.replace("backend: old", "backend: gone"))
        assert await gateway.reload() is False
        _write(path, (1, 2), TO_NEW)
        assert await gateway.reload() is True
    finally:
        await gateway.aclose()
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    [rejected] = [line for line in lines if line["event"] == "config_rejected"]
    assert (rejected["level"], rejected["trigger"]) == ("error", "call")
    assert rejected["problems"] == ["routes[0].backend: unknown backend 'gone'"]
    [reloaded] = [line for line in lines if line["event"] == "config_reloaded"]
    assert reloaded["changes"][2] == "lookup: old 100% → new 100% (100% of requests move)"


async def test_a_new_session_idle_time_applies_at_reload(tmp_path: Path) -> None:
    """sessions.idle in a reloaded file reaches the session broker without a restart: a
    session idle longer than the new time is gone, and the reload names the change."""
    path = _write(tmp_path / "routing.yaml", (1, 2), TO_OLD)
    gateway, _client = await _start(path, watch=None)
    try:
        sessions = gateway.sessions
        sessions.open("Tok00001", 1, "DEMO0001", "old", {})
        assert sessions.find("Tok00001", 1, "DEMO0001") is not None
        events = _recorder(gateway)
        path.write_text(path.read_text() + "sessions: {idle: 1ms}\n", encoding="utf-8")
        assert await gateway.reload("test")
        await asyncio.sleep(0.01)
        assert sessions.find("Tok00001", 1, "DEMO0001") is None
    finally:
        await gateway.aclose()
    [event] = [e for e in events if isinstance(e, ConfigReloaded)]
    assert "sessions.idle: 1800s → 0.001s" in event.changes
