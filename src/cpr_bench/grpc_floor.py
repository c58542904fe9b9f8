"""What one gRPC call costs with nothing in it: ``python -m cpr_bench.grpc_floor``.

A grpc.aio server in another process answers every call at once with a fixed
1,500-byte reply (the size of a person); this process makes unary calls with a
60-byte request from 32 concurrent tasks, as a gateway worker does under load, on
the production event loop. Printed: calls per second, and the CPU each call cost
the caller and the server. That is the floor under the modern route's CPU per
lookup on each side (docs/benchmarks.md, P3): no servicer, no conversion, no
socket to a client.

``--stream`` measures the same exchange as one message each way on bidirectional
streams that stay open (one stream per concurrent task, one message on it at a
time): what a call would cost if the gateway's batches rode one long-lived stream
instead of a call each.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

import grpc

from cpr_bench.measure import usage
from gateway.runtime.loops import run

_METHOD = "/bench.Floor/Call"
_STREAM_METHOD = "/bench.Floor/Stream"
_REPLY = b"x" * 1500
_REQUEST = b"y" * 60
_WARMUP_CALLS = 2000


@dataclass(frozen=True, slots=True)
class Figures:
    calls: int
    per_second: float
    client_us: float
    server_us: float
    stream: bool = False

    def __str__(self) -> str:
        what = "messages each way on open gRPC streams" if self.stream else "empty unary gRPC calls"
        return (
            f"{self.calls} {what}: {self.per_second:,.0f}/s,"
            f" {self.client_us:.0f} µs CPU in the caller and {self.server_us:.0f} µs"
            " in the server per call"
        )


async def _reply(_request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return _REPLY


async def _replies(
    requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    async for _request in requests:
        yield _REPLY


def _serve(port_to: Connection) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
            "Call": grpc.unary_unary_rpc_method_handler(_reply),
            "Stream": grpc.stream_stream_rpc_method_handler(_replies),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Floor", handlers),)
        )
        port_to.send(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    run(serve())


def _cpu_s(pid: int) -> float:
    return usage([pid]).cpu_s


async def _call_all(
    port: int, calls: int, concurrency: int, server_pid: int, stream: bool
) -> Figures:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(_METHOD)
        open_stream: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
            _STREAM_METHOD
        )
        left = _WARMUP_CALLS

        async def unary_caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await call(_REQUEST, timeout=10)

        async def stream_caller() -> None:
            nonlocal left
            exchange = open_stream()
            while left > 0:
                left -= 1
                await exchange.write(_REQUEST)
                await exchange.read()
            await exchange.done_writing()

        caller = stream_caller if stream else unary_caller

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        left = calls
        server_cpu, cpu, started = _cpu_s(server_pid), time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu, server_cpu = time.process_time() - cpu, _cpu_s(server_pid) - server_cpu
    return Figures(calls, calls / elapsed, cpu / calls * 1e6, server_cpu / calls * 1e6, stream)


def measure(calls: int, concurrency: int = 32, *, stream: bool = False) -> Figures:
    """Start the server, make ``calls`` calls (after a warm-up), stop it."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    server = context.Process(target=_serve, args=(send,))
    server.start()
    try:
        if not receive.poll(60):
            raise RuntimeError("the gRPC server did not start")
        port = receive.recv()
        assert server.pid is not None
        return run(_call_all(port, calls, concurrency, server.pid, stream))
    finally:
        server.kill()
        server.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.grpc_floor")
    parser.add_argument("--calls", type=int, default=20_000, help="calls measured")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument(
        "--stream", action="store_true", help="messages on open bidirectional streams instead"
    )
    args = parser.parse_args(argv)
    print(measure(args.calls, args.concurrency, stream=args.stream))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
