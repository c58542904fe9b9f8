"""What a hung new side costs a logon: ``python -m cpr_bench.logon_isolation``.

Against a running stack (`make run`): logs on N times through the gateway with the new
services healthy, then with them hung (their process stopped with SIGSTOP, so connections
are accepted by the kernel and never answered), then healthy again, and prints each run's
latency p50 and p99. The logon is the mainframe's; the repeat on the services has its own
short budget (docs/sessions.md, "The other sides' logons"). Quoted in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from cpr_bench.measure import percentile
from cpr_devtools.client import Credentials, Endpoint, logon
from gateway.tls import client_context

#: The demo stack's user (emulator.yaml, all synthetic).
DEMO_WHO = Credentials("PRIV", "0001", "DEMO0001")
DEMO_PASSWORD = "Demo#123"


async def _logons(endpoint: Endpoint, count: int) -> list[float]:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        await logon(endpoint, DEMO_WHO, DEMO_PASSWORD)
        took.append(time.perf_counter() - started)
    return sorted(took)


def _services_pid() -> int:
    found = subprocess.run(
        ["pgrep", "-f", "gateway.cli backend"], capture_output=True, text=True, check=True
    )
    return int(found.stdout.split()[0])


async def _measure(endpoint: Endpoint, count: int) -> None:
    pid = _services_pid()
    for label, stop in (("healthy", False), ("services hung", True), ("healthy again", False)):
        if stop:
            os.kill(pid, signal.SIGSTOP)
        try:
            took = await _logons(endpoint, count)
        finally:
            if stop:
                os.kill(pid, signal.SIGCONT)
        print(
            f"{label}: {count} logons, p50 {percentile(took, 50) * 1000:.1f} ms,"
            f" p99 {percentile(took, 99) * 1000:.1f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.logon_isolation")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--ca", type=Path, default=Path("var/tls/ca.crt"))
    args = parser.parse_args(argv)
    endpoint = Endpoint("127.0.0.1", args.port, client_context(args.ca), "localhost")
    asyncio.run(_measure(endpoint, args.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
