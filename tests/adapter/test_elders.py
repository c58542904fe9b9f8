"""Light traffic on the eldest worker (gateway.runtime.elders): the board the workers share,
the wake-ups through their FIFOs, and admitting listeners of an elder and a younger worker
on one real listening socket, in one event loop (the kernel wakes both, as it wakes two
processes)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from gateway_harness import until

from gateway.config.schema import Limits
from gateway.runtime.elders import BOARD_FILE, ROOM, WATCH_S, Elders, prepare_board, wake_path
from gateway.server.admission import AdmittingServer, Slot, Slots


def _board(directory: Path, workers: int) -> list[Elders]:
    prepare_board(directory, workers)
    sides = [Elders.attach(directory, index) for index in range(workers)]
    assert all(side is not None for side in sides)
    return [side for side in sides if side is not None]


@contextmanager
def _elder_and_younger(directory: Path) -> Iterator[tuple[Elders, Elders, int]]:
    """A board of two workers, and the younger one's wake-up FIFO open for reading."""
    eldest, younger = _board(directory, 2)
    wakes = younger.open_wakes()
    try:
        yield eldest, younger, wakes
    finally:
        os.close(wakes)
        eldest.close()


def _pending(fd: int) -> bytes:
    try:
        return os.read(fd, 64)
    except BlockingIOError:
        return b""


def test_a_worker_sees_room_while_any_elder_has_it(tmp_path: Path) -> None:
    eldest, middle, youngest = _board(tmp_path, 3)
    assert not eldest.have_room()  # nobody above it: it always listens
    assert middle.have_room() and youngest.have_room()
    eldest.publish(ROOM)
    assert not middle.have_room()
    assert youngest.have_room()  # the middle one still has room
    middle.publish(ROOM + 3)
    assert not youngest.have_room()
    eldest.publish(ROOM - 1)
    assert middle.have_room() and youngest.have_room()


def test_a_worker_that_becomes_full_wakes_the_younger_ones(tmp_path: Path) -> None:
    with _elder_and_younger(tmp_path) as (eldest, _younger, wakes):
        for count in range(1, ROOM):
            eldest.publish(count)
        assert _pending(wakes) == b""
        eldest.publish(ROOM)
        assert _pending(wakes) == b"\0"
        eldest.publish(ROOM + 1)
        assert _pending(wakes) == b""  # only when it becomes full
        eldest.publish(ROOM)
        eldest.publish(ROOM + 1)
        eldest.publish(ROOM)
        Elders.drain(wakes)  # two wake-ups waiting: both read
        assert _pending(wakes) == b""


def test_a_younger_worker_not_yet_listening_for_wake_ups_is_skipped(tmp_path: Path) -> None:
    eldest, younger = _board(tmp_path, 2)
    eldest.publish(ROOM)  # nobody has its FIFO open: no error, no wake-up kept
    wakes = younger.open_wakes()
    try:
        assert _pending(wakes) == b""
        eldest.publish(ROOM - 1)
        eldest.publish(ROOM)
        assert _pending(wakes) == b"\0"
    finally:
        os.close(wakes)
        eldest.close()


def test_a_worker_with_a_lower_connection_limit_is_full_at_it(tmp_path: Path) -> None:
    with _elder_and_younger(tmp_path) as (eldest, younger, wakes):
        eldest.room = younger.room = 2
        eldest.publish(2)
        assert _pending(wakes) == b"\0"
        assert not younger.have_room()


def test_a_shedding_worker_is_full_whatever_its_count(tmp_path: Path) -> None:
    with _elder_and_younger(tmp_path) as (eldest, younger, wakes):
        eldest.publish(1)
        eldest.declare_full()
        assert _pending(wakes) == b"\0"
        assert not younger.have_room()
        eldest.publish(0)  # its next connection closed: the count speaks again
        assert younger.have_room()


def test_no_board_or_no_place_on_it_is_no_elders(tmp_path: Path) -> None:
    assert Elders.attach(tmp_path, 0) is None
    (tmp_path / BOARD_FILE).write_bytes(b"")
    assert Elders.attach(tmp_path, 0) is None
    two = tmp_path / "two"
    two.mkdir()
    prepare_board(two, 2)
    assert Elders.attach(two, 2) is None
    assert Elders.attach(two, 1) is not None


async def test_a_younger_worker_without_its_fifo_starts_and_serves(tmp_path: Path) -> None:
    _board(tmp_path, 2)
    wake_path(tmp_path, 1).unlink()
    younger = Elders.attach(tmp_path, 1)
    assert younger is not None
    listening = socket.create_server(("127.0.0.1", 0), backlog=8)
    port = listening.getsockname()[1]
    worker = _Worker(listening, younger)
    try:
        client = await _connect(port)  # (it listens as a lone worker: no wake-up could reach it)
        await until(lambda: len(worker.taken) == 1, "it took the connection")
        client.close()
    finally:
        worker.server.close()
        for held in worker.taken:
            if held.transport is not None:
                held.transport.close()


# -- listeners of two workers on one socket ---------------------------------------------


class _Held(asyncio.Protocol):
    """A connection that stays open until the test closes it; it holds its slot."""

    def __init__(self, taken: list[_Held], slot: Slot) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self._slot = slot
        self._taken = taken

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._taken.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._slot.release()


class _Worker:
    def __init__(self, sock: socket.socket, elders: Elders) -> None:
        self.taken: list[_Held] = []
        self.slots = Slots(lambda: Limits(max_connections=100), elders.publish)
        self.server = AdmittingServer(
            self.slots,
            None,
            None,
            lambda _source, slot, _accepted: _Held(self.taken, slot),
            lambda *_refusal: None,
            elders=elders,
        )
        self.server.start(sock)


@asynccontextmanager
async def _workers(directory: Path) -> AsyncIterator[tuple[_Worker, _Worker, int]]:
    """An elder and a younger worker accepting on one listening socket (each its own copy
    of the descriptor, as each process has), and its port."""
    eldest, younger = _board(directory, 2)
    listening = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listening.getsockname()[1]
    workers = (_Worker(listening.dup(), eldest), _Worker(listening.dup(), younger))
    listening.close()
    try:
        yield workers[0], workers[1], port
    finally:
        for worker in workers:
            worker.server.close()
            for held in worker.taken:
                if held.transport is not None:
                    held.transport.close()
        eldest.close()


def _holds(taken: list[_Held], count: int) -> Callable[[], bool]:
    return lambda: len(taken) == count


async def _connect(port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    await loop.sock_connect(client, ("127.0.0.1", port))
    return client


async def test_light_traffic_goes_to_the_elder_alone(tmp_path: Path) -> None:
    async with _workers(tmp_path) as (elder, younger, port):
        for number in range(1, 11):  # one at a time, as at a light load
            client = await _connect(port)
            await until(_holds(elder.taken, number), "the elder took it")
            elder.taken[-1].transport.close()  # type: ignore[union-attr]
            client.close()
            await until(lambda: len(elder.slots) == 0, "the connection closed")
        assert younger.taken == []


async def test_once_the_elder_is_full_the_younger_listens_too(tmp_path: Path) -> None:
    async with _workers(tmp_path) as (elder, younger, port):
        clients = [await _connect(port) for _ in range(ROOM)]
        await until(lambda: len(elder.taken) == ROOM, "the elder took the first ones")
        assert younger.taken == []
        elder.server.close()  # the elder, full, takes no more: only a listening younger can
        clients.append(await _connect(port))
        await until(lambda: len(younger.taken) == 1, "the younger took the next")
        for client in clients:
            client.close()


async def test_a_connection_no_elder_takes_is_taken_by_a_resting_younger(
    tmp_path: Path,
) -> None:
    async with _workers(tmp_path) as (elder, younger, port):
        elder.server.close()  # stuck or gone, with room on the board
        client = await _connect(port)
        await until(lambda: len(younger.taken) == 1, "the younger took it")
        client.close()


async def test_a_listening_younger_rests_again_when_an_elder_has_room(tmp_path: Path) -> None:
    async with _workers(tmp_path) as (elder, younger, port):
        held = [await _connect(port) for _ in range(ROOM)]
        await until(lambda: len(elder.taken) == ROOM, "the elder is full")
        await asyncio.sleep(WATCH_S)  # the younger has read its wake-up by now
        for connection in elder.taken:
            connection.transport.close()  # type: ignore[union-attr]
        await until(lambda: len(elder.slots) == 0, "the elder has room again")
        taken_before = len(younger.taken)
        for _ in range(5):
            client = await _connect(port)
            await until(lambda: len(elder.slots) == 1, "the elder took it")
            elder.taken[-1].transport.close()  # type: ignore[union-attr]
            client.close()
            await until(lambda: len(elder.slots) == 0, "closed")
        assert len(younger.taken) == taken_before
        for client in held:
            client.close()


def test_the_board_has_a_wake_up_fifo_for_each_younger_worker(tmp_path: Path) -> None:
    prepare_board(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [BOARD_FILE, "wake-1", "wake-2"]
    assert all(wake_path(tmp_path, i).is_fifo() for i in (1, 2))
