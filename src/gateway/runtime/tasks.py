"""The one helper that creates tasks: named, referenced until done, cancelled with a reason.

asyncio keeps only weak references to tasks, so a task nobody holds can vanish
mid-flight; and an unnamed task is anonymous in every traceback. Every task of
this project therefore lives in a :class:`TaskSet` owned by the component that
started it, which also knows how to drain it at shutdown. The one exception is
hot: a client connection's request task is held, named and drained by its
connection (gateway.server.connection), which exists for exactly that request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    """Tasks one component owns; ``len()`` is how many are still running."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task called ``name`` and keep it until it finishes."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(_report_failure)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, grace_s: float, reason: str) -> int:
        """Let running tasks finish within ``grace_s``, then cancel the rest; returns how many.

        Cancellation of the caller is not swallowed: it propagates once the
        stragglers have been told to stop.
        """
        pending: set[asyncio.Task[Any]] = set(self._tasks)
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=grace_s)
        for task in pending:
            task.cancel(reason)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


def _report_failure(task: asyncio.Task[Any]) -> None:
    """Hand an unexpected exception to the loop's handler now, not at garbage collection."""
    if task.cancelled() or task.exception() is None:
        return
    task.get_loop().call_exception_handler(
        {"message": f"task {task.get_name()} failed", "exception": task.exception(), "task": task}
    )
