"""The supervisor behind `cpr-gateway up`: parts start in order, each once the one before
accepts and is prepared; a stop signal stops them all, during start-up too; a part that
exits stops the stack unless it is expendable (a fleet's gateway replica).

The supervisor runs in its own process, as `up` does, over small parts that listen on a
port; the test signals it and its parts as an operator (or a crash) would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cpr_bench.servers import free_port

#: A part: listens on argv[1] once the file argv[2] exists ("-": at once); exits 3 if not.
_PART = """
import pathlib, signal, socket, sys, time
if sys.argv[2] != "-" and not pathlib.Path(sys.argv[2]).exists():
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    time.sleep(1)
"""
#: The supervisor over the parts described in argv[1] (JSON), on the production loop.
_SUPERVISOR = """
import json, pathlib, sys
from cpr_devtools.supervisor import Listener, Part, run_stack
from gateway.cli import run_loop

def part(spec):
    touch = spec.get("touch")
    return Part(
        spec["name"],
        tuple(spec["argv"]),
        tuple(Listener("127.0.0.1", port, spec["name"]) for port in spec["ports"]),
        after_start=(lambda: pathlib.Path(touch).touch()) if touch else None,
        expendable=spec.get("expendable", False),
    )

sys.exit(run_loop(run_stack([part(spec) for spec in json.loads(sys.argv[1])])))
"""
_PID = re.compile(r"^  (\S+) .* pid (\d+)$")


@dataclass
class Stack:
    """A running supervisor, what it printed so far, and its parts' pids by name."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)

    async def read_until(self, text: str) -> None:
        """Read its output until a line holding ``text``; fail at the end of it."""
        assert self.process.stdout is not None
        while not any(text in line for line in self.lines):
            raw = await self.process.stdout.readline()
            assert raw, f"no {text!r} in {self.lines}"
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            if match := _PID.match(line):
                self.pids[match[1]] = int(match[2])

    async def complaint(self, text: str) -> None:
        """Read its stderr until a line holding ``text``; fail at the end of it."""
        assert self.process.stderr is not None
        seen: list[str] = []
        while not any(text in line for line in seen):
            raw = await self.process.stderr.readline()
            assert raw, f"no {text!r} in {seen}"
            seen.append(raw.decode())

    async def stopped(self) -> tuple[int, str]:
        """Its exit status and what it said on stderr, once it has exited."""
        assert self.process.stderr is not None
        err = await self.process.stderr.read()
        return await self.process.wait(), err.decode()


def _part(name: str, port: int, *, needs: Path | None = None, **more: object) -> dict[str, object]:
    argv = [sys.executable, "-c", _PART, str(port), str(needs) if needs else "-"]
    return {"name": name, "argv": argv, "ports": [port], **more}


@asynccontextmanager
async def supervising(*parts: dict[str, object]) -> AsyncIterator[Stack]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SUPERVISOR, json.dumps(parts),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            yield Stack(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _accepts(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def test_parts_start_in_order_and_a_stop_signal_stops_them_all(tmp_path: Path) -> None:
    """The second part starts only after the first listens and its after_start ran; SIGTERM
    stops both and the supervisor exits 0."""
    marker = tmp_path / "prepared"
    first, second = free_port(), free_port()
    async with supervising(
        _part("first", first, touch=str(marker)), _part("second", second, needs=marker)
    ) as stack:
        await stack.read_until("stack is up")
        assert [line.split()[0] for line in stack.lines[:2]] == ["first", "second"]
        assert await _accepts(first) and await _accepts(second)
        stack.process.send_signal(signal.SIGTERM)
        status, _err = await stack.stopped()
    assert status == 0
    assert not await _accepts(first) and not await _accepts(second)


async def test_an_expendable_part_may_exit_and_the_others_carry_on() -> None:
    """A gateway replica stopped by hand: the stack says so and keeps running."""
    keeper, replica = free_port(), free_port()
    async with supervising(
        _part("keeper", keeper), _part("replica", replica, expendable=True)
    ) as stack:
        await stack.read_until("stack is up")
        os.kill(stack.pids["replica"], signal.SIGTERM)
        await stack.complaint("replica exited (0); the others carry on")
        assert not await _accepts(replica)
        assert await _accepts(keeper)
        assert stack.process.returncode is None
        stack.process.send_signal(signal.SIGTERM)
        status, _err = await stack.stopped()
    assert status == 0


async def test_any_other_part_that_exits_stops_the_stack() -> None:
    """A store or backend that dies takes the stack down (exit 1), the others stopped."""
    store, replica = free_port(), free_port()
    async with supervising(_part("store", store), _part("replica", replica, expendable=True)) as s:
        await s.read_until("stack is up")
        os.kill(s.pids["store"], signal.SIGTERM)
        status, err = await s.stopped()
    assert status == 1
    assert "store exited unexpectedly (0); stopping the stack" in err
    assert not await _accepts(replica)


async def test_a_part_that_exits_while_starting_stops_what_had_started(tmp_path: Path) -> None:
    """No after_start made the file the second part needs: it exits 3, the supervisor says
    so, stops the first and exits 1."""
    first, second = free_port(), free_port()
    async with supervising(
        _part("first", first), _part("second", second, needs=tmp_path / "never")
    ) as stack:
        status, err = await stack.stopped()
    assert status == 1
    assert "second exited with 3 while starting" in err
    assert not await _accepts(first)


async def test_a_stop_signal_is_obeyed_while_the_stack_is_starting() -> None:
    """SIGTERM while a part has yet to listen: everything started so far stops, exit 0."""
    first, silent = free_port(), free_port()
    hold = [sys.executable, "-c", "import time; time.sleep(60)"]
    async with supervising(
        _part("first", first), {"name": "silent", "argv": hold, "ports": [silent]}
    ) as stack:
        await stack.read_until("first")
        stack.process.send_signal(signal.SIGTERM)
        await stack.read_until("stopping…")
        status, _err = await stack.stopped()
    assert status == 0
    assert not any("stack is up" in line for line in stack.lines)
    assert not await _accepts(first)
