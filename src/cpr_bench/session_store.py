"""What the shared session store costs a gateway process: ``python -m cpr_bench.session_store``.

Starts a throwaway ``redis-server`` on loopback, stores N sessions in it from one
:class:`~gateway.sessions.redis_store.RedisSessions` (as the replica that answered
their logons), and from a second one (another replica) measures:

- **a fetch**: what a replica pays the first time one of its requests carries a token
  it has not seen (a GETEX round trip and the copy into its table): latency p50/p99
  and the CPU of the fetching process;
- **a use**: what every later request with that token pays while served from the
  replica's copy (the throttled renewal of the key's expiry): CPU per request.

The end-to-end figures (a gateway's CPU per lookup and p50 with the embedded store and
with Redis) are the benchmark's ``closed-sessions`` phase; docs/benchmarks.md quotes both.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from cpr_bench.measure import percentile
from cpr_bench.servers import free_port
from cpr_devtools.redis_server import redis_argv
from gateway.observe.events import EventBus
from gateway.runtime.loops import run
from gateway.sessions.redis_store import RedisSessions
from gateway.sessions.table import Session, SessionBroker

_IDLE_S = 1800.0
_TIMEOUT_S = 0.5
_START_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Figures:
    sessions: int
    fetch_p50_us: float
    fetch_p99_us: float
    fetch_cpu_us: float
    use_cpu_us: float

    def __str__(self) -> str:
        return (
            f"{self.sessions} sessions fetched from Redis by another replica: p50"
            f" {self.fetch_p50_us:.0f} µs, p99 {self.fetch_p99_us:.0f} µs,"
            f" {self.fetch_cpu_us:.0f} µs CPU each; a request served from the copy:"
            f" {self.use_cpu_us:.1f} µs CPU for the store"
        )


def _token(index: int) -> str:
    return f"T{index:07d}"


def _session(index: int) -> Session:
    return Session(1, "BENCH001", "mainframe", {"mainframe": _token(index), "persons-v2": "m"})


async def _measure(url: str, sessions: int, uses: int) -> Figures:
    home = RedisSessions(url, SessionBroker(idle_s=_IDLE_S, clock=time.monotonic), EventBus(),
                         timeout_s=_TIMEOUT_S)  # fmt: skip
    table = SessionBroker(idle_s=_IDLE_S, clock=time.monotonic)
    other = RedisSessions(url, table, EventBus(), timeout_s=_TIMEOUT_S)
    try:
        for i in range(sessions):
            await home.opened(_token(i), _session(i))
        await other.fetch(_token(0))  # connect outside the measurement
        latencies = []
        cpu = time.process_time()
        for i in range(sessions):
            started = time.perf_counter()
            if not await other.fetch(_token(i)):
                raise RuntimeError(f"session {i} was not found")
            latencies.append(time.perf_counter() - started)
        fetch_cpu = (time.process_time() - cpu) / sessions
        cpu = time.process_time()
        for n in range(uses):
            other.used(_token(n % sessions))
        await asyncio.sleep(0)
        use_cpu = (time.process_time() - cpu) / uses
    finally:
        await home.aclose()
        await other.aclose()
    latencies.sort()
    return Figures(
        sessions,
        percentile(latencies, 50) * 1e6,
        percentile(latencies, 99) * 1e6,
        fetch_cpu * 1e6,
        use_cpu * 1e6,
    )


async def _redis_up(url: str) -> None:
    client = Redis.from_url(url)
    try:
        async with asyncio.timeout(_START_TIMEOUT_S):
            while True:
                try:
                    if await client.ping():
                        return
                except Exception:  # not up yet: any failure means "ask again"
                    await asyncio.sleep(0.05)
    finally:
        await client.aclose()


def measure(sessions: int, uses: int) -> Figures:
    """Start a redis-server, and fetch ``sessions`` sessions then use them ``uses`` times."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cpr-gateway-bench-redis-") as directory:
        argv = redis_argv(binary, port, Path(directory))
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            run(_redis_up(url))
            return run(_measure(url, sessions, uses))
        finally:
            server.terminate()
            server.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.session_store")
    parser.add_argument("--sessions", type=int, default=5000, help="sessions fetched")
    parser.add_argument("--uses", type=int, default=200_000, help="requests served from copies")
    args = parser.parse_args(argv)
    print(measure(args.sessions, args.uses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
