"""`cpr-gateway backend`: the new gRPC services in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from cpr_mainframe.config import load_config
from cpr_services.drift import Drift
from cpr_services.server import ModernServer, ServiceTls
from cpr_services.services import parse_networks
from gateway.runtime import heap

#: Seconds calls in flight get to finish after a stop signal.
GRACE_S = 5.0


async def run_backend(args: argparse.Namespace) -> int:
    """Serve PersonService, SubscriptionService and AuthService from the modern store."""
    try:
        drift = Drift.parse(args.drift)
    except ValueError as exc:
        print(f"backend: --drift: {exc}", file=sys.stderr)
        return 2
    try:
        trusted = parse_networks(args.trusted_gateways)
    except ValueError as exc:
        print(f"backend: --trusted-gateways: {exc}", file=sys.stderr)
        return 2
    if (args.tls_cert is None) != (args.tls_key is None) or (
        args.client_ca is not None and args.tls_cert is None
    ):
        print(
            "backend: --tls-cert and --tls-key go together; --client-ca needs them", file=sys.stderr
        )
        return 2
    tls = None
    if args.tls_cert is not None:
        tls = ServiceTls(args.tls_cert, args.tls_key, args.client_ca)
    server = ModernServer(
        load_config(args.config),
        args.store,
        host=args.host,
        port=args.port,
        delay=args.delay,
        drift=drift,
        trusted_gateways=trusted,
        tls=tls,
        gateway_identities=tuple(args.gateway_identity),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    heap.settle()  # this process is the services: its start-up heap is done (gateway.runtime.heap)
    try:
        await stop.wait()
    finally:
        await server.aclose(GRACE_S)
    return 0
