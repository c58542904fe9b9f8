"""Where a process's CPU goes by library, sampled by ``perf`` (Linux's own profiler).

``perf record -e cpu-clock`` samples on a timer interrupt, so it sees every instruction a
process runs, in the kernel and in any library, without stopping it and without favouring
any kind of code (a ptrace-based sampler such as py-spy in native mode stops the process
for each sample and so catches it at system calls more often than it is in them). It
cannot name Python functions (CPython 3.11 has no perf support), so its answer is by
library: OpenSSL, the kernel, the C library, uvloop, the interpreter. cpr_bench.breakdown
reads it beside py-spy's Python stacks.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
from collections.abc import Iterable
from pathlib import Path

#: A library's group, by a substring of its name as perf reports it; the first match wins.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OpenSSL (TLS)", ("libcrypto", "libssl", "_ssl.cpython")),
    ("kernel (system calls, TCP)", ("[kernel",)),
    ("C library (allocation, copies, system call entry)", ("libc.so", "libc-", "ld-linux")),
    ("uvloop / libuv", ("loop.cpython", "libuv")),
    ("HAProxy itself", ("haproxy",)),
    ("Python interpreter (the gateway's and the standard library's Python)", ("libpython",
                                                                             "python3")),
)  # fmt: skip
OTHER_LIBRARIES = "other libraries (extension modules)"
_LINE = re.compile(r"^\s*([0-9.]+)%\s+(\S.*?)\s*$")


def available() -> bool:
    """Whether ``perf`` is installed (Debian: linux-perf)."""
    return shutil.which("perf") is not None


def group_of(library: str) -> str:
    for group, patterns in GROUPS:
        if any(p in library for p in patterns):
            return group
    return OTHER_LIBRARIES


def parse_report(lines: Iterable[str]) -> dict[str, float]:
    """Shares (0-1) by group from ``perf report --sort dso --stdio`` lines."""
    shares: dict[str, float] = {}
    for line in lines:
        if line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            group = group_of(match.group(2))
            shares[group] = shares.get(group, 0.0) + float(match.group(1)) / 100
    return shares


class Recording:
    """``perf record`` of some processes while a measurement runs."""

    def __init__(self, pids: Iterable[int], output: Path) -> None:
        self._pids = ",".join(str(p) for p in pids)
        self._output = output
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        argv = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-p", self._pids]
        argv += ["-o", str(self._output), "--quiet"]
        self._process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )

    async def stop(self) -> dict[str, float]:
        """Stop recording; the shares by group (empty if perf recorded nothing)."""
        assert self._process is not None, "not started"
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)  # perf writes its file and exits
        await self._process.wait()
        if not self._output.exists():
            return {}
        report = await asyncio.create_subprocess_exec(
            "perf", "report", "-i", str(self._output), "--no-children", "--sort", "dso",
            "--stdio", "-g", "none",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await report.communicate()
        return parse_report(out.decode(errors="replace").splitlines())
