"""Stopping a child process the way every launcher here does: ask, wait, then insist."""

from __future__ import annotations

import asyncio
import contextlib


async def stop(process: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """SIGTERM ``process`` and wait for it (a gateway drains in the meantime); SIGKILL it if
    it outlives ``timeout_s``. Returns False when it had to be killed."""
    if process.returncode is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return False
    return True
