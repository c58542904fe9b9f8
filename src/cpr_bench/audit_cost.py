"""What the audit log costs a gateway process per lookup: ``python -m cpr_bench.audit_cost``.

Emits N answered lookups on a bus with the gateway's own subscribers (metrics, logs), once
without the audit log and once with it under each fsync policy, and divides the process's
CPU (the event loop's emits and the writer thread's pseudonymising, formatting, chaining,
writing and fsyncing, up to the last record on disk) by N. The difference is what the
audit log adds to each lookup's work. Then lookups at a steady rate (``--rate``, as a gateway
process of the light benchmark phase gets them), without and with the audit log: that adds
the writer thread's wake-ups, which cost more than its work at a light rate. The
benchmark's ``--audit`` runs put both beside the whole lookup's cost (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

from gateway.audit.writer import AuditLog
from gateway.config.audit import Audit, FsyncPolicy
from gateway.model import Operation
from gateway.observe.events import EventBus, LookupAnswered
from gateway.observe.logs import configure_logging, log_event
from gateway.observe.metrics import Metrics
from gateway.runtime.loops import run
from gateway.shadow.pseudonym import KEY_BYTES, Pseudonymiser


def _lookups(count: int) -> list[LookupAnswered]:
    def one(n: int) -> LookupAnswered:
        pnr = f"{n:010d}"  # a person per lookup: the HMAC is computed every time
        return LookupAnswered(
            "192.0.2.7", "0001", "DEMO0001", pnr, "PRIV", Operation.LOOKUP, "lookups",
            "mainframe", "00",
        )  # fmt: skip

    return [one(n) for n in range(count)]


async def _cpu_per_lookup(events: list[LookupAnswered], audit: Audit | None) -> float:
    """Microseconds of process CPU per lookup, every record on disk at the end."""
    bus = EventBus()
    bus.subscribe(Metrics().on_event)
    bus.subscribe(log_event)
    log = None
    if audit is not None:
        key = bytes(KEY_BYTES)
        log = AuditLog(audit, Pseudonymiser(key), bus.emit, max_pending=len(events) + 1)
        await log.start()
        bus.subscribe(log.on_event)
    started = time.process_time()
    for event in events:
        bus.emit(event)
    if log is not None:
        await log.aclose()
    return (time.process_time() - started) / len(events) * 1e6


async def _paced(rate: float, seconds: float, audit: Audit | None) -> float:
    """Milliseconds of process CPU per second with ``rate`` lookups a second coming."""
    log = None
    if audit is not None:
        log = AuditLog(audit, Pseudonymiser(bytes(KEY_BYTES)), lambda _event: None)
        await log.start()
    [event] = _lookups(1)
    count = int(rate * seconds)
    started = time.process_time()
    for _ in range(count):
        if log is not None:
            log.on_event(event)
        await asyncio.sleep(1 / rate)
    cpu = time.process_time() - started
    if log is not None:
        await log.aclose()
    return cpu / seconds * 1e3


async def _measure(count: int) -> list[tuple[str, float]]:
    configure_logging(json=True, stream=io.StringIO())
    events = _lookups(count)
    figures = [("off", await _cpu_per_lookup(events, None))]
    with tempfile.TemporaryDirectory(prefix="cpr-gateway-bench-audit-") as directory:
        for policy in FsyncPolicy:
            where = Path(directory) / policy.value
            audit = Audit(where, Path(directory) / "audit.key", policy)
            figures.append((f"fsync {policy.value}", await _cpu_per_lookup(events, audit)))
    return figures


async def _measure_paced(rate: float, seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="cpr-gateway-bench-audit-") as directory:
        audit = Audit(Path(directory) / "audit", Path(directory) / "audit.key")
        return await _paced(rate, seconds, None), await _paced(rate, seconds, audit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.audit_cost")
    parser.add_argument("--lookups", type=int, default=50_000, help="lookups per measurement")
    parser.add_argument("--rate", type=float, default=50.0, help="lookups/s, paced run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a paced run")
    args = parser.parse_args(argv)
    figures = run(_measure(args.lookups), "asyncio")
    off = figures[0][1]
    for name, cpu in figures:
        added = "" if name == "off" else f" (+{cpu - off:.1f} µs)"
        print(f"audit {name}: {cpu:.1f} µs CPU per lookup{added}")
    paced_off, paced_on = run(_measure_paced(args.rate, args.seconds), "asyncio")
    added_us = (paced_on - paced_off) / args.rate * 1e3
    print(
        f"at {args.rate:g} lookups/s: {paced_off:.1f} ms CPU/s without, {paced_on:.1f} with"
        f" (fsync interval): {added_us:+.0f} µs per lookup"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
