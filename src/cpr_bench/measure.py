"""Numbers of a benchmark: latency percentiles, and what server processes cost (/proc).

Latency is summarised by nearest-rank percentiles over every sample (no
histogram buckets, no interpolation): p99 of 1,500 samples is the 1,485th
smallest, a value that really occurred. CPU and memory come from /proc, read
before and after a measurement: ``utime + stime`` of every process of a server
(a gateway with workers is several), and ``VmHWM``, the peak resident set since
the process started.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: /proc times are in clock ticks; the kernel's rate is fixed for the machine's uptime.
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")
#: Indices into the fields of /proc/<pid>/stat that follow ``(comm)``, which start with
#: ``state`` (field 3 in proc(5)): ppid is field 4, utime 14, stime 15.
_PPID, _UTIME, _STIME = 1, 11, 12


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``ordered`` (sorted ascending); NaN when empty."""
    if not ordered:
        return math.nan
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one set of latencies, in seconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencySummary:
        """Summarise ``values`` (any order)."""
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            max=ordered[-1] if ordered else math.nan,
        )


def intended_start(start: float, rate: float, index: int) -> float:
    """When request ``index`` of an open-loop schedule at ``rate``/s from ``start`` is due."""
    return start + index / rate


def open_loop_latency(start: float, rate: float, index: int, done: float) -> float:
    """Latency of request ``index``, counted from when it was *due*, not when it was sent.

    A server that stalls makes the generator send late; measuring from the
    actual send would hide exactly that delay (coordinated omission).
    """
    return done - intended_start(start, rate, index)


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU seconds used so far and memory of one process or a group of them."""

    cpu_s: float
    #: Resident set (VmRSS) now, in bytes, summed over the group.
    rss: int
    #: Peak resident set since start (VmHWM) in bytes, summed over the group.
    rss_peak: int
    #: The largest single process's VmHWM, in bytes.
    rss_peak_max: int
    processes: int

    def __sub__(self, before: ProcessUsage) -> ProcessUsage:
        """CPU used between ``before`` and this sample; memory as of this sample."""
        return ProcessUsage(
            self.cpu_s - before.cpu_s, self.rss, self.rss_peak, self.rss_peak_max, self.processes
        )


def _stat_fields(text: str) -> list[str]:
    """The fields of /proc/<pid>/stat's text that follow ``(comm)``.

    The command name is in parentheses and may itself hold spaces or ``)``, so
    the fields are split after the *last* ``)``.
    """
    return text[text.rindex(")") + 2 :].split()


def parse_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime in ticks) from the text of /proc/<pid>/stat."""
    fields = _stat_fields(text)
    return int(fields[_PPID]), int(fields[_UTIME]) + int(fields[_STIME])


def cpu_times(pids: Iterable[int]) -> tuple[float, float]:
    """(user, system) CPU seconds so far of ``pids`` together, from /proc/<pid>/stat."""
    user = system = 0
    for pid in pids:
        fields = _stat_fields((_PROC / str(pid) / "stat").read_text())
        user += int(fields[_UTIME])
        system += int(fields[_STIME])
    return user / _TICKS_PER_S, system / _TICKS_PER_S


def parse_status_kib(text: str, key: str) -> int:
    """A ``kB`` value of /proc/<pid>/status (e.g. ``VmHWM``) in KiB; 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    return 0


def usage(pids: Iterable[int]) -> ProcessUsage:
    """CPU so far and peak RSS of ``pids`` together; raises OSError for a vanished pid."""
    ticks = rss = peak = largest = count = 0
    for pid in pids:
        ticks += parse_stat((_PROC / str(pid) / "stat").read_text())[1]
        status = (_PROC / str(pid) / "status").read_text()
        rss += parse_status_kib(status, "VmRSS") * 1024
        hwm = parse_status_kib(status, "VmHWM") * 1024
        peak += hwm
        largest = max(largest, hwm)
        count += 1
    return ProcessUsage(ticks / _TICKS_PER_S, rss, peak, largest, count)


@dataclass(frozen=True, slots=True)
class MachineTimes:
    """CPU seconds since boot of the whole machine, all cores (/proc/stat)."""

    #: Running something: any process, the kernel, interrupts.
    busy_s: float
    #: Wanted by this (virtual) machine but given to others by the hypervisor: capacity
    #: that was simply not there, as if the cores had been slower for a while.
    stolen_s: float


def machine_share(cpu_s: float, elapsed_s: float) -> float:
    """What share of the whole machine (every core) ``cpu_s`` is over ``elapsed_s``."""
    capacity = elapsed_s * (os.cpu_count() or 1)
    return cpu_s / capacity if capacity > 0 else 0.0


def machine_times() -> MachineTimes:
    """The machine's busy and stolen CPU seconds since boot."""
    with (_PROC / "stat").open() as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return MachineTimes(busy / _TICKS_PER_S, steal / _TICKS_PER_S)


def reset_peak(pids: Iterable[int]) -> bool:
    """Start every process's VmHWM afresh, so the next reading is the peak since now.

    Writing ``5`` to /proc/<pid>/clear_refs does it (Linux 4.0 and later). False
    when it is not permitted: peaks are then since each process started.
    """
    try:
        for pid in pids:
            (_PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def process_tree(root: int) -> list[int]:
    """``root`` and all of its descendants, found by scanning /proc for parent pids."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, _ticks = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):  # exited while we looked, or a kernel thread oddity
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return sorted(tree)
