"""Which event loop every `cpr-gateway` process runs on: uvloop by default, asyncio on request.

uvloop (libuv, with its TLS layer in Cython) does the same work as asyncio's pure-Python
transports and TLS protocol for a fraction of the CPU; on the gateway's hot path, two TLS
handshakes and a few small writes per lookup, that is most of its own cost
(docs/benchmarks.md). Every component is written against asyncio's interfaces only and the
test suite runs its real-server tests on both loops, so ``CPR_GATEWAY_LOOP=asyncio`` is a
supported way back — for a platform without uvloop wheels, or to rule the loop out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, get_args

T = TypeVar("T")

LoopName = Literal["uvloop", "asyncio"]
#: The environment variable that chooses the loop; child processes inherit it.
LOOP_ENV = "CPR_GATEWAY_LOOP"
DEFAULT_LOOP: LoopName = "uvloop"


def chosen_loop() -> LoopName:
    """The loop named by :data:`LOOP_ENV`, or the default; an unknown name is an error."""
    name = os.environ.get(LOOP_ENV, "").strip().lower() or DEFAULT_LOOP
    if name not in get_args(LoopName):
        choices = ", ".join(get_args(LoopName))
        raise ValueError(f"{LOOP_ENV}={name!r}: expected one of {choices}")
    return name  # type: ignore[return-value]  # checked against LoopName just above


def loop_factory(name: LoopName | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new event loop of ``name`` (default: :func:`chosen_loop`)."""
    if (name or chosen_loop()) == "uvloop":
        import uvloop  # noqa: PLC0415  (only the processes that run on it pay the import)

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: LoopName | None = None) -> T:
    """:func:`asyncio.run` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
