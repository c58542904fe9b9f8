"""`cpr-gateway emulator`: run the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from cpr_mainframe.config import load_config
from cpr_mainframe.server import Emulator
from gateway.runtime import heap

#: Seconds in-flight requests get to finish after a stop signal.
GRACE_S = 10.0


async def run_emulator(config_path: Path) -> None:
    """Load ``config_path``, serve until a stop signal, then drain and close."""
    emulator = Emulator(load_config(config_path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    heap.settle()  # started: what it built to start is never garbage (gateway.runtime.heap)
    try:
        await stop.wait()
    finally:
        await emulator.aclose(GRACE_S)
