"""The legacy backend's connection line over real TCP: requests beyond its connections wait
in order, and once the waits have stood above the target for an interval, a request that
finds every connection busy is refused at once (BackendBusy, answered 08)."""

from __future__ import annotations

import asyncio

import pytest
from gateway_harness import LOOKUP, LOOKUP_ANSWER, Handler, backend_server, read_request

from gateway.backends import LegacyBackend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.errors import BackendBusy

#: Each answer is held this long: far above the line's target, so every wait counts.
HOLD_S = 0.15


def _held(go: asyncio.Event) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await go.wait()
        writer.write(LOOKUP_ANSWER)
        await writer.drain()

    return handle


async def test_a_standing_line_refuses_the_next_request_at_once_and_the_line_drains() -> None:
    go = asyncio.Event()
    async with backend_server(_held(go)) as port:
        config = LegacyBackendConfig("mainframe", "127.0.0.1", port, None, max_connections=1)
        backend = LegacyBackend.from_config(config)

        def call() -> asyncio.Task[bytes]:
            return asyncio.ensure_future(backend.call(LOOKUP, LOOKUP.encode(), deadline=5.0))

        async def answer_one(task: asyncio.Task[bytes]) -> bytes:
            """Let the backend answer the request holding the connection, and only that one."""
            await asyncio.sleep(HOLD_S)
            go.set()
            answer = await task
            go.clear()
            return answer

        calls = [call(), call(), call()]  # one holds the connection, two wait in line
        assert [await answer_one(t) for t in calls[:2]] == [LOOKUP_ANSWER] * 2
        # The second and third waited HOLD_S and twice that: above the target for longer
        # than the interval, so the line stands.
        with pytest.raises(BackendBusy):
            await backend.call(LOOKUP, LOOKUP.encode(), deadline=5.0)
        assert await answer_one(calls[2]) == LOOKUP_ANSWER
        # The line has drained: a request now finds a free connection and is served.
        go.set()
        assert await backend.call(LOOKUP, LOOKUP.encode(), deadline=5.0) == LOOKUP_ANSWER
