"""Connection slots: counted in all and per source address, released once, limits read live;
the accept queue's length as the kernel tells it."""

from __future__ import annotations

import socket

from gateway.config.schema import Limits
from gateway.server.admission import Slot, Slots, _queued


def _slots(limits: list[Limits]) -> Slots:
    """Slots reading ``limits[0]`` at each take, so that a test can change it (a reload)."""
    return Slots(lambda: limits[0])


def test_an_address_gets_its_share_and_no_more() -> None:
    """Past max_connections_per_address an address is refused; another still gets in."""
    slots = _slots([Limits(max_connections=10, max_connections_per_address=2)])
    taken = [slots.take("192.0.2.1"), slots.take("192.0.2.1")]
    assert all(isinstance(s, Slot) for s in taken)
    assert slots.take("192.0.2.1") == "per_address"
    assert isinstance(slots.take("192.0.2.2"), Slot)
    assert (len(slots), slots.from_address("192.0.2.1")) == (3, 2)


def test_the_process_limit_comes_first() -> None:
    """Past max_connections every address is refused, whatever its own count."""
    slots = _slots([Limits(max_connections=2, max_connections_per_address=5)])
    slots.take("192.0.2.1")
    slots.take(None)  # a balancer's connection before its header
    assert slots.take("192.0.2.9") == "over_capacity"


def test_a_slot_is_released_once() -> None:
    """Releasing twice frees one place; the address's count goes back to none."""
    slots = _slots([Limits(max_connections=1, max_connections_per_address=1)])
    slot = slots.take("192.0.2.1")
    assert isinstance(slot, Slot)
    slot.release()
    slot.release()
    assert (len(slots), slots.from_address("192.0.2.1")) == (0, 0)
    assert isinstance(slots.take("192.0.2.1"), Slot)


def test_a_balancer_connection_is_counted_against_the_client_it_names() -> None:
    """A slot taken without an address is claimed for the named client, within its share."""
    slots = _slots([Limits(max_connections=10, max_connections_per_address=1)])
    first, second = slots.take(None), slots.take(None)
    assert isinstance(first, Slot) and isinstance(second, Slot)
    assert first.claim("198.51.100.7")
    assert not second.claim("198.51.100.7")
    second.release()
    first.release()
    assert (len(slots), slots.from_address("198.51.100.7")) == (0, 0)


def test_a_reload_applies_to_the_next_connection() -> None:
    """Lowered limits refuse new connections at once; open ones keep their slots."""
    limits = [Limits(max_connections=10, max_connections_per_address=3)]
    slots = _slots(limits)
    slots.take("192.0.2.1")
    slots.take("192.0.2.1")
    limits[0] = Limits(max_connections=10, max_connections_per_address=2)
    assert slots.take("192.0.2.1") == "per_address"
    assert slots.from_address("192.0.2.1") == 2


def test_the_accept_queue_is_read_from_the_kernel() -> None:
    """What a wake-up accepts: the connections the kernel has queued on a TCP listener (so
    that no accept ends a batch with EAGAIN); unknown on a socket that is not TCP."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listening:
        assert _queued(listening) == 0
        clients = [socket.create_connection(listening.getsockname()) for _ in range(3)]
        try:
            assert _queued(listening) == 3  # loopback connects complete before they return
            accepted, _ = listening.accept()
            accepted.close()
            assert _queued(listening) == 2
        finally:
            for client in clients:
                client.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert _queued(unix) is None
