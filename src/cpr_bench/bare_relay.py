"""The least a Python TLS proxy on uvloop can do per lookup: ``python -m cpr_bench.bare_relay``.

A reference for cpr_bench.breakdown, not a product: it terminates the client's TLS with
the gateway's certificate, opens a verified TLS connection to the mainframe for the
first bytes that arrive, relays them, relays the answer back until the mainframe closes,
and closes. Towards the mainframe it resumes TLS sessions as the gateway's legacy
backend does (gateway.backends.tls_resumption), unless ``--full-handshakes``. No
framing, routing, sessions, limits, deadlines, telemetry or logging: what it costs per
lookup is what uvloop, its TLS transport, the socket calls and a protocol callback or
two cost, the floor under any gateway written this way. The gateway's cost beyond it is
the gateway's own logic; its cost beyond HAProxy's is the price of Python and uvloop's
TLS layer.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from gateway.backends.tls_resumption import ResumingContext
from gateway.runtime import heap
from gateway.runtime.loops import run
from gateway.tls import client_context, server_context


class _Upstream(asyncio.Protocol):
    """The mainframe side: the answer goes back to the client as it comes, then both close."""

    def __init__(self, client: asyncio.Transport, context: ssl.SSLContext) -> None:
        self._client = client
        self._context = context
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._client.write(data)

    def eof_received(self) -> bool:
        if isinstance(self._context, ResumingContext) and self._transport is not None:
            self._context.keep(self._transport.get_extra_info("ssl_object"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()


class RelayedClient(asyncio.Protocol):
    """The client side: its first bytes open the upstream connection."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._transport: asyncio.Transport | None = None
        self._started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._started or self._transport is None:
            return
        self._started = True
        self._transport.pause_reading()
        self._relay.spawn(self._relay.forward(self._transport, data))


class Relay:
    """Where to relay to, and the tasks that open upstream connections."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        self._host, self._port, self._context = host, port, context
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def forward(self, client: asyncio.Transport, record: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(
                lambda: _Upstream(client, self._context),
                self._host,
                self._port,
                ssl=self._context,
                server_hostname="localhost",
            )
        except (OSError, ssl.SSLError):
            client.abort()
            return
        upstream.write(record)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    inbound = server_context(args.cert, args.key)
    outbound = client_context(
        args.ca, kind=ssl.SSLContext if args.full_handshakes else ResumingContext
    )
    outbound.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    relay = Relay(args.upstream_host, args.upstream_port, outbound)
    server = await loop.create_server(
        lambda: RelayedClient(relay), "127.0.0.1", args.port, ssl=inbound, backlog=1024
    )
    heap.settle()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    await stop
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.bare_relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument(
        "--full-handshakes", action="store_true", help="no TLS session resumption upstream"
    )
    run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
