"""Admission at accept: a connection is counted, and refused if over a limit, before any TLS.

A TLS handshake costs the server far more CPU than the client, and ``loop.create_server``
(asyncio's and uvloop's alike) runs it before the protocol learns that a connection exists.
A listener with TLS, or behind a trusted load balancer, therefore accepts its connections
itself (:class:`AdmittingServer`) and decides at once, from the socket's peer address:

* :class:`Slots` counts connections from accept to close, per process and per source
  address; over ``limits.max_connections`` or ``limits.max_connections_per_address`` the
  socket is closed at once, with no byte read and no TLS work, and the refusal reported;
* from a trusted balancer the PROXY v2 header is read first (gateway.server.proxy_gate)
  and the client it names is what the per-address limit counts;
* then ``loop.connect_accepted_socket`` makes the socket a connection, with TLS when the
  listener has it, in its address's turn (gateway.server.turns: a few handshakes at once
  per address); the header, the wait for a turn and the handshake together have
  ``limits.handshake_timeout`` from accept, and a handshake cut by it is reported;
* while the event loop runs late (its sustained lag, gateway.runtime.pressure, above
  ``limits.shed_lag``), a new connection is closed at accept (``overloaded``): past its
  capacity a process refuses early instead of letting every admitted request grow late.
  The lag is the server's own CPU backlog: a client cannot raise it by being slow.

The accept loop is a reader callback on the listening socket, accepting what is queued in
one go, as asyncio's own servers do; each admitted socket costs a task until its
handshake is done. A plaintext listener without a balancer keeps ``create_server``: its
protocol sees the connection at accept, so it counts the slot itself (gateway.server.tcp).
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import os
import socket
import ssl
import sys
from collections.abc import Callable

from gateway.codec.proxy_protocol import Address, ProxyHeaderReader
from gateway.config.schema import Limits, ProxyProtocol
from gateway.errors import ProxyHeaderError
from gateway.observe.events import (
    HANDSHAKE_TIMEOUT,
    OVER_CAPACITY,
    OVERLOADED,
    PER_ADDRESS,
    PROXY_HEADER,
)
from gateway.runtime.elders import COVER_S, WATCH_S, Elders
from gateway.runtime.tasks import TaskSet
from gateway.server.proxy_gate import read_proxy_header
from gateway.server.turns import HandshakeTurns

#: Builds a connection's own protocol, given the client a trusted proxy named (None when the
#: socket's peer is the client), the slot it holds, which the protocol releases when the
#: connection is lost, and the socket's peer as accepted: ``host:port`` and the host (known
#: here, so that the protocol need not ask its transport; None when it has no address).
ConnectionFactory = Callable[[Address | None, "Slot", tuple[str, str] | None], asyncio.Protocol]
#: Hears of connections closed before they became one: the peer (``host:port``; the host
#: alone for refusals at accept), the reason (a ``RequestRejected`` reason), bytes received,
#: what was wrong when the reason alone does not say, and how many connections alike.
RefusalHook = Callable[[str, str, int, str, int], None]
#: accept() errors that mean "out of descriptors or memory for now": stop accepting for a
#: second, then go on (asyncio's own servers wait the same second).
_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_RETRY_S = 1.0
#: Sockets accepted per wake-up at most: a burst is taken in one go, but a flood cannot
#: keep the loop from everything else (asyncio accepts its backlog, 100, per wake-up).
_ACCEPT_BATCH = 128
#: struct tcp_info as far as ``tcpi_unacked`` (eight one-byte fields, then __u32 rto, ato,
#: snd_mss, rcv_mss, unacked): for a listening socket, its accept queue's length.
_UNACKED_AT = 24
_TCP_INFO_BYTES = _UNACKED_AT + 4
#: A handshake that failed this close to its deadline was cut by it: a loop's timers may
#: run a little before their time (uvloop's clock counts milliseconds).
_CLOCK_SLACK_S = 0.005


class Slots:
    """Connections open at once: in all, and per source address, against the limits."""

    def __init__(
        self, limits: Callable[[], Limits], published: Callable[[int], None] | None = None
    ) -> None:
        #: Read at each accept, so that a reload applies to new connections at once.
        self.limits = limits
        self._open = 0
        self._per_address: dict[str, int] = {}
        #: Told the count at each change (the workers' board, gateway.runtime.elders).
        self._published = published

    def __len__(self) -> int:
        return self._open

    def from_address(self, address: str) -> int:
        """Connections open from ``address``."""
        return self._per_address.get(address, 0)

    def take(self, address: str | None) -> Slot | str:
        """A slot for a connection from ``address`` (None: not known yet, counted in all
        only), or the reason it is refused: ``over_capacity`` or ``per_address``."""
        if self._open >= self.limits().max_connections:
            return OVER_CAPACITY
        if address is not None and not self._has_room(address):
            return PER_ADDRESS
        self._open += 1
        if self._published is not None:
            self._published(self._open)
        slot = Slot(self)
        if address is not None:
            self._count(address)
            slot.address = address
        return slot

    def _has_room(self, address: str) -> bool:
        return self._per_address.get(address, 0) < self.limits().max_connections_per_address

    def _count(self, address: str) -> None:
        self._per_address[address] = self._per_address.get(address, 0) + 1

    def _release(self, slot: Slot) -> None:
        self._open -= 1
        if self._published is not None:
            self._published(self._open)
        address = slot.address
        if address is not None:
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]


class Slot:
    """One connection's place in :class:`Slots`, from accept until :meth:`release`."""

    __slots__ = ("_slots", "address")

    def __init__(self, slots: Slots) -> None:
        self._slots: Slots | None = slots
        #: The source address counted against the per-address limit; None: not counted.
        self.address: str | None = None

    def claim(self, address: str) -> bool:
        """Count this slot against ``address`` too (the client a balancer named); False,
        and nothing counted, when that address has no room."""
        if self._slots is None or not self._slots._has_room(address):
            return False
        self._slots._count(address)
        self.address = address
        return True

    def release(self) -> None:
        """The connection is gone; a second call does nothing."""
        if self._slots is not None:
            self._slots._release(self)
            self._slots = None


class AdmittingServer:
    """Accepts on a listening socket, admits within the slots, reads a trusted balancer's
    header, and hands each admitted socket to TLS and its protocol."""

    def __init__(
        self,
        slots: Slots,
        trusted: ProxyProtocol | None,
        context: ssl.SSLContext | None,
        factory: ConnectionFactory,
        refused: RefusalHook,
        *,
        pressure: Callable[[], float] | None = None,
        elders: Elders | None = None,
    ) -> None:
        self._slots = slots
        self._trusted = trusted
        self._context = context
        self._factory = factory
        self._refused = refused
        self._sock: socket.socket | None = None
        #: The listening socket's (family, type, proto), which its connections share.
        self._kind: tuple[int, int, int] = (socket.AF_INET, socket.SOCK_STREAM, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused: asyncio.TimerHandle | None = None
        #: The workers' board, where a shedding worker says it is full (None: on its own).
        self._board = elders
        #: Elder workers that light traffic is left to (None: this process takes all).
        self._elders = elders if elders is not None and elders.index > 0 else None
        #: A younger worker's rest (gateway.runtime.elders): its wake-up FIFO, the timer of
        #: its next look at the accept queue, and whether the last look found it non-empty.
        self._wakes: int | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._queued_at_last_look = False
        #: Until when a younger worker accepts whether or not an elder has room: its looks
        #: found connections that no elder took (``elders.COVER_S``).
        self._covering_until = 0.0
        #: Connections admitted but not yet through their header and handshake.
        self._doors = TaskSet()
        #: The event loop's sustained lag in seconds (see _shedding); None: never shed.
        self._pressure = pressure
        self._turns = HandshakeTurns(lambda: slots.limits().handshakes_per_address)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket, while there is one."""
        return () if self._sock is None else (self._sock,)

    def start(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (listening) from now on; it is closed by :meth:`close`."""
        sock.setblocking(False)
        # Inherited by every socket accepted from it (Linux), as create_server's transports
        # set it: a handshake's and an answer's small writes go out at once, not after the
        # client's delayed ACK (Nagle). Once here rather than a system call per connection.
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._kind = (int(sock.family), int(sock.type), sock.proto)
        self._loop = asyncio.get_running_loop()
        if self._elders is not None:
            try:
                self._wakes = self._elders.open_wakes()
            except OSError:  # no FIFO to be woken through: listen always, as a lone worker
                self._elders = None
        if self._elders is None or self._wakes is None:
            self._loop.add_reader(sock.fileno(), self._accept_queued)
            return
        self._loop.add_reader(self._wakes, self._woken)
        self._rest()

    def is_serving(self) -> bool:
        """True while connections are accepted."""
        return self._sock is not None

    def close(self) -> None:
        """Stop accepting and close the listening socket; connections accepted carry on."""
        for timer in (self._paused, self._watch):
            if timer is not None:
                timer.cancel()
        self._paused = self._watch = None
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._wakes is not None and self._loop is not None:
            self._loop.remove_reader(self._wakes)
            os.close(self._wakes)
            self._wakes = None

    async def aclose(self) -> None:
        """At shutdown, after :meth:`close`: connections not yet through the door are closed,
        as if they had come a moment later."""
        await self._doors.drain(0.0, "shutdown: not yet through the door")

    # -- accepting ------------------------------------------------------------------------

    def _accept_queued(self) -> None:
        """A connection is queued: accept, or leave it to an elder worker with room."""
        listening = self._sock
        if listening is None:
            return
        elders = self._elders
        if elders is not None and elders.have_room() and self._covered_by_elders():
            # The kernel woke the elders too: the one with room takes it.
            self._loop_of().remove_reader(listening.fileno())
            self._rest()
            return
        self._accept_batch(listening)

    # -- a younger worker's rest (gateway.runtime.elders) ---------------------------------

    def _rest(self) -> None:
        """Not listening: an elder has room. Look at the accept queue now and then."""
        self._queued_at_last_look = False
        self._watch = self._loop_of().call_later(WATCH_S, self._look)

    def _listen(self) -> None:
        """Every elder is full, or none takes what is queued: accept from now on."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._sock is not None and self._paused is None:  # (not out of descriptors)
            self._loop_of().add_reader(self._sock.fileno(), self._accept_queued)

    def _woken(self) -> None:
        """An elder became full: listen if every elder is."""
        assert self._wakes is not None and self._elders is not None  # (registered so)
        self._elders.drain(self._wakes)
        if self._watch is not None and not self._elders.have_room():
            self._listen()

    def _look(self) -> None:
        """A resting worker's look at the accept queue: a connection queued at two looks
        in a row is one no elder took."""
        self._watch = None
        if self._sock is None:
            return
        queued = bool(_queued(self._sock))
        if queued and self._queued_at_last_look:
            # An elder with room that does not accept is busy or stuck: cover for it.
            self._covering_until = self._loop_of().time() + COVER_S
            self._accept_batch(self._sock)
            self._listen()
            return
        self._watch = self._loop_of().call_later(WATCH_S, self._look)
        self._queued_at_last_look = queued

    def _covered_by_elders(self) -> bool:
        """Whether the elders take what they have room for (not while covering for them)."""
        return self._loop_of().time() >= self._covering_until

    def _loop_of(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None  # started
        return self._loop

    def _accept_batch(self, listening: socket.socket) -> None:
        """Accept what the kernel has queued, up to a batch; admit or refuse each at once.
        Refusals are reported after the batch, one report per reason and address: a flood
        is refused at the cost of its accepts and closes, not of a report for each."""
        refused: dict[tuple[str, str], int] = {}
        queued = _queued(listening)
        family, kind, proto = self._kind
        try:
            for _ in range(_ACCEPT_BATCH if queued is None else min(queued, _ACCEPT_BATCH)):
                try:
                    fd, address = listening._accept()  # type: ignore[attr-defined]
                except (BlockingIOError, InterruptedError):
                    return
                except ConnectionAbortedError:
                    continue  # the client left while queued
                except OSError as exc:
                    if exc.errno in _RESOURCES:
                        self._pause()
                    return  # anything else: the listening socket is being closed
                # What socket.accept() makes of it here (the listening socket does not
                # block, so neither does this one until the transport makes it so).
                sock = _Accepted(family, kind, proto, fd)
                refusal = self._admit(sock, address)
                if refusal is not None:
                    refused[refusal] = refused.get(refusal, 0) + 1
        finally:
            for (reason, host), count in refused.items():
                self._refused(host, reason, 0, "", count)

    def _pause(self) -> None:
        """Out of descriptors: stop accepting for a while; the kernel queues meanwhile."""
        assert self._loop is not None and self._sock is not None
        self._loop.remove_reader(self._sock.fileno())
        self._paused = self._loop.call_later(_ACCEPT_RETRY_S, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if self._sock is not None and self._loop is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept_queued)

    def _admit(self, sock: socket.socket, address: object) -> tuple[str, str] | None:
        """Let ``sock`` in, or close it: then the reason and the address it came from."""
        host, port = _host_port(address)
        balancer = self._trusted is not None and self._trusted.trusts(host)
        # A balancer's own address carries every client it relays: the client its header
        # names is what the per-address limit counts.
        slot: Slot | str = OVERLOADED
        if not self._shedding():
            slot = self._slots.take(None if balancer else host)
        elif self._board is not None:
            self._board.declare_full()  # younger workers must not leave connections to it
        if isinstance(slot, str):
            sock.close()
            return slot, host
        assert self._loop is not None  # accepting
        accepted = self._loop.time()
        accepted_from = (f"{host}:{port}", host) if host else None
        coro = self._let_in(sock, accepted_from, slot, balancer, accepted)
        self._doors.spawn(coro, name="admitted")
        return None

    def _shedding(self) -> bool:
        """Whether to refuse a connection at accept because the process is behind: its loop
        runs later than ``limits.shed_lag``. A connection let in now would wait
        longer still, spend CPU on a handshake that may be cut, and delay those before it;
        refused now, it costs an accept and a close, and its client learns at once."""
        if self._pressure is None:
            return False
        return self._pressure() > self._slots.limits().shed_lag

    async def _let_in(
        self,
        sock: socket.socket,
        accepted_from: tuple[str, str] | None,
        slot: Slot,
        balancer: bool,
        accepted: float,
    ) -> None:
        """Header (from a balancer), then the address's turn and TLS, then the protocol; a
        socket that does not get that far is closed and its slot released here."""
        loop = asyncio.get_running_loop()
        peer = accepted_from[0] if accepted_from else ":"
        patience = self._slots.limits().handshake_timeout
        deadline = accepted + patience
        through = False
        try:
            # Non-blocking: the transport makes it so (and TCP_NODELAY came from the
            # listening socket); a balancer's header is read before there is a transport.
            source = await self._source(sock, peer, slot, patience) if balancer else None
            await self._handshake(sock, source, slot, deadline, accepted_from)
            through = True
        except _NotAdmitted:
            pass  # reported by _source
        except (OSError, TimeoutError):
            # A failed handshake is unseen, as on any TLS listener; one cut by the timeout
            # (or whose turn did not come in time) held a slot for the whole of it, which
            # is worth knowing.
            if self._context is not None and loop.time() >= deadline - _CLOCK_SLACK_S:
                self._refused(
                    peer, HANDSHAKE_TIMEOUT, 0, f"no TLS handshake within {patience:g}s", 1
                )
        finally:
            if not through:
                slot.release()
                sock.close()

    async def _handshake(
        self,
        sock: socket.socket,
        source: Address | None,
        slot: Slot,
        deadline: float,
        accepted_from: tuple[str, str] | None,
    ) -> None:
        """TLS (when the listener has it) within ``deadline``, in the turn of the address
        that the slot counts, then the connection's protocol."""
        loop = asyncio.get_running_loop()
        address = slot.address if self._context is not None else None
        if address is not None and not self._turns.try_take(address):
            async with asyncio.timeout_at(deadline):
                await self._turns.take(address)
        try:
            await loop.connect_accepted_socket(
                lambda: self._factory(source, slot, accepted_from),
                sock,
                ssl=self._context,
                ssl_handshake_timeout=max(deadline - loop.time(), 0.001) if self._context else None,
            )
        finally:
            if address is not None:
                self._turns.give(address)

    async def _source(
        self, sock: socket.socket, peer: str, slot: Slot, patience: float
    ) -> Address | None:
        """The client a balancer's header names (None: a LOCAL header), counted against its
        address; _NotAdmitted, reported, when the header is bad or late or that address has
        no room."""
        reader = ProxyHeaderReader()
        sock.setblocking(False)
        try:
            source = await read_proxy_header(sock, reader, patience)
        except ProxyHeaderError as exc:
            self._refused(peer, PROXY_HEADER, reader.received, str(exc), 1)
            raise _NotAdmitted from None
        if source is not None and not slot.claim(str(source.ip)):
            self._refused(str(source), PER_ADDRESS, reader.received, "", 1)
            raise _NotAdmitted
        return source


class _Accepted(socket.socket):
    """An accepted connection's socket whose ``family`` and ``type`` are the C object's
    integers. ``socket.socket`` turns them into enums in Python on every read, and the
    event loop reads them three times per connection (``connect_accepted_socket``), as
    ``socket.accept`` does twice more (of the listening socket): about twenty Python calls
    per connection for what compares the same as an integer."""

    __slots__ = ()
    family = _socket.socket.family  # type: ignore[assignment]
    type = _socket.socket.type  # type: ignore[assignment]


class _NotAdmitted(Exception):
    """A balancer's connection turned away after its header (already reported)."""


def _queued(listening: socket.socket) -> int | None:
    """Connections waiting in the kernel's accept queue of ``listening`` (Linux's TCP_INFO
    of a listening socket: ``tcpi_unacked``); None when it cannot be read (not TCP).

    Accepting only what is queued saves the ``accept`` that would end the batch with
    EAGAIN, and a worker woken for a connection that a sibling took (they share one
    queue, and every waiting worker is woken) learns so without an exception: at a light
    load, two failed accepts per connection."""
    try:
        info = listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < _TCP_INFO_BYTES:
        return None
    return int.from_bytes(info[_UNACKED_AT : _UNACKED_AT + 4], sys.byteorder)


def _host_port(address: object) -> tuple[str, object]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), address[1]
    return "", ""
