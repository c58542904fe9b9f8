"""What a worker pays to get a session from a sibling: ``python -m cpr_bench.session_peers``.

A sibling process holds N sessions and answers on its Unix socket (gateway.sessions.peers);
this process asks for each in turn, as a worker does the first time one of its
clients' tokens reaches it, and prints the latency of a question (p50, p99) and the
CPU it cost the asking process. Quoted in docs/sessions.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

from cpr_bench.measure import percentile
from gateway.observe.events import EventBus
from gateway.runtime.loops import run
from gateway.sessions.peers import PeerDirectory, SessionPeers
from gateway.sessions.table import SessionBroker

_IDLE_S = 1800.0


@dataclass(frozen=True, slots=True)
class Figures:
    questions: int
    p50_us: float
    p99_us: float
    cpu_us: float

    def __str__(self) -> str:
        return (
            f"{self.questions} sessions fetched from a sibling: p50 {self.p50_us:.0f} µs,"
            f" p99 {self.p99_us:.0f} µs, {self.cpu_us:.0f} µs CPU of the asking worker each"
        )


def _token(index: int) -> str:
    return f"T{index:07d}"


def _sibling(directory: str, sessions: int, ready: ProcessEvent, stop: ProcessEvent) -> None:
    async def serve() -> None:
        broker = SessionBroker(idle_s=_IDLE_S, clock=time.monotonic)
        for i in range(sessions):
            broker.open(_token(i), 1, "BENCH001", "mainframe", {"persons-v2": f"M{i:07d}"})
        peers = SessionPeers(PeerDirectory(Path(directory), 1), broker, EventBus())
        await peers.start()
        ready.set()
        await asyncio.to_thread(stop.wait)  # set by the measuring process, when it is done
        await peers.aclose()

    run(serve())


async def _ask_all(directory: Path, questions: int) -> Figures:
    broker = SessionBroker(idle_s=_IDLE_S, clock=time.monotonic)
    peers = SessionPeers(PeerDirectory(directory, 0), broker, EventBus())
    await peers.start()
    try:
        latencies = []
        cpu = time.process_time()
        for i in range(questions):
            started = time.perf_counter()
            if not await peers.fetch(_token(i)):
                raise RuntimeError(f"the sibling did not know session {i}")
            latencies.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu
    finally:
        await peers.aclose()
    latencies.sort()
    return Figures(
        questions,
        percentile(latencies, 50) * 1e6,
        percentile(latencies, 99) * 1e6,
        cpu / questions * 1e6,
    )


def measure(questions: int) -> Figures:
    """Start a sibling holding ``questions`` sessions and fetch each of them once."""
    with tempfile.TemporaryDirectory(prefix="cpr-gateway-bench-peers-") as directory:
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        sibling = context.Process(target=_sibling, args=(directory, questions, ready, stop))
        sibling.start()
        try:
            if not ready.wait(60):
                raise RuntimeError("the sibling did not start")
            return run(_ask_all(Path(directory), questions))
        finally:
            stop.set()
            sibling.join(10)
            if sibling.is_alive():
                sibling.kill()
                sibling.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.session_peers")
    parser.add_argument("--questions", type=int, default=5000, help="sessions fetched")
    args = parser.parse_args(argv)
    print(measure(args.questions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
