"""Handshake turns: at most a few TLS handshakes at once per source address, the rest in line.

A server's TLS handshake is the costliest thing a connection does before its request
(the key exchange and the signature, about a millisecond of CPU), and a process does its
handshakes one callback after another on one event loop. When one address opens dozens of
connections at once (a consumer's burst, or an attacker reconnecting everything it holds),
every other client's handshake waits behind all of theirs. :class:`HandshakeTurns` lets
each address have ``limits.handshakes_per_address`` handshakes in progress; its other
connections wait, in order and without costing CPU, until one of its own is done. An
address alone still has the whole CPU (its turns pass on as fast as handshakes finish);
beside others, it has its share. Waiting counts against the handshake timeout: a turn
that does not come in time is a handshake that did not.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable


class HandshakeTurns:
    """Handshakes in progress per source address, and the connections waiting for one."""

    def __init__(self, per_address: Callable[[], int]) -> None:
        #: Read at each take, so that a reload applies at once.
        self._per_address = per_address
        self._busy: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def busy(self, address: str) -> int:
        """Handshakes in progress from ``address``."""
        return self._busy.get(address, 0)

    def waiting(self, address: str) -> int:
        """Connections from ``address`` waiting for a turn."""
        return len(self._waiting.get(address, ()))

    def try_take(self, address: str) -> bool:
        """Take a turn for ``address`` if one is free now (no wait, no deadline to set up:
        the common case); :meth:`give` it back after."""
        busy = self._busy.get(address, 0)
        if busy < self._per_address():
            self._busy[address] = busy + 1
            return True
        return False

    async def take(self, address: str) -> None:
        """Return once ``address`` may start a handshake; :meth:`give` it back after. A
        cancelled wait (the handshake's deadline) leaves nothing taken."""
        if self.try_take(address):
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._waiting.setdefault(address, collections.deque())
        line.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give(address)  # handed over just as the wait was cut: pass it on
            else:
                line.remove(turn)
                if not line:
                    del self._waiting[address]
            raise

    def give(self, address: str) -> None:
        """A handshake from ``address`` is over: its turn goes to the next in line, if any."""
        line = self._waiting.get(address)
        if line:
            turn = line.popleft()
            if not line:
                del self._waiting[address]
            turn.set_result(None)  # the turn passes on: busy stays as it is
            return
        left = self._busy[address] - 1
        if left:
            self._busy[address] = left
        else:
            del self._busy[address]
