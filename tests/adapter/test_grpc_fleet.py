"""The gRPC backend in front of service replicas (real grpc.aio servers on port 0, one store):
balancing over an ``ipv4:`` target, keepalive pings the services accept, and the client's
address in metadata, used by the allow-lists only when a trusted gateway sends it."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from cpr_accounts.customers import IPNetwork
from cpr_devtools.migration import migrate_register
from cpr_mainframe import default_config_path, load_config
from cpr_mainframe.schema import EmulatorConfig
from cpr_services.server import ModernServer
from emulator_harness import (
    DEMO_OFF4,
    DEMO_PRIV,
    TEST_PASSWORD_COST,
    DemoUser,
    first_pnr,
    register_of,
)
from gateway.backends.grpc import GrpcBackend, channel_options
from gateway.backends.grpc_config import Balancing, GrpcBackendConfig, grpc_target
from gateway.backends.grpc_wire import ACCEPTED_PING_INTERVAL_S, DEFAULT_KEEPALIVE_S
from gateway.codec import LogonAnswer, LogonRequest, LookupRequest
from gateway.model import FejlNr

CONFIG = replace(load_config(default_config_path()), password_cost=TEST_PASSWORD_COST)
#: Sequential lookups through a two-replica target: round robin alternates call by call.
LOOKUPS = 20
#: A client's keepalive in the keepalive test. grpc's client sends pings at most once a
#: second whatever is asked, so 1 s is the shortest that means what it says.
KEEPALIVE_S = 1.0
#: Idle time in the keepalive test: a server that refuses the pings answers GOAWAY on the
#: third strike, i.e. the fourth ping; this leaves room for one more.
IDLE_S = 5 * KEEPALIVE_S
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
#: Customer 1 (DEMO_PRIV) admits only this network: never the loopback the test runs on.
CLIENTS_NETWORK = ipaddress.ip_network("192.0.2.0/24")
ALLOWED, DENIED = "192.0.2.7", "198.51.100.1"
PICK_FIRST = Balancing.PICK_FIRST


@pytest.fixture(scope="module")
def register_path() -> Path:
    """A 300-person register shared read-only by this module."""
    return register_of(300)


@pytest.fixture
def store(tmp_path: Path, register_path: Path) -> str:
    """One modern store for every replica of a test."""
    location = str(tmp_path / "modern.sqlite")
    migrate_register(register_path, location, progress=False)
    return location


@pytest.fixture
def pnr(register_path: Path) -> str:
    """The PNR of a person in the store."""
    return first_pnr(register_path)


@asynccontextmanager
async def replicas(
    count: int,
    store: str,
    directory: EmulatorConfig = CONFIG,
    *,
    trusted_gateways: tuple[IPNetwork, ...] = (),
    accepted_ping_interval: float = ACCEPTED_PING_INTERVAL_S,
) -> AsyncIterator[list[tuple[ModernServer, int]]]:
    """``count`` servers on ``store``, each with its port."""
    async with AsyncExitStack() as stack:
        started = []
        for _ in range(count):
            server = ModernServer(
                directory,
                store,
                trusted_gateways=trusted_gateways,
                accepted_ping_interval=accepted_ping_interval,
            )
            port = await server.start()
            stack.push_async_callback(server.aclose, 0)
            started.append((server, port))
        yield started


@asynccontextmanager
async def backend_for(config: GrpcBackendConfig) -> AsyncIterator[GrpcBackend]:
    """The adapter as the gateway builds it, closed afterwards."""
    backend = GrpcBackend.from_config(config)
    try:
        yield backend
    finally:
        await backend.aclose()


def _config(
    address: str,
    balancing: Balancing = Balancing.ROUND_ROBIN,
    keepalive: float = DEFAULT_KEEPALIVE_S,
) -> GrpcBackendConfig:
    return GrpcBackendConfig("persons-v2", grpc_target(address), None, balancing, keepalive)


def _ipv4(ports: list[int]) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)


async def _logon(backend: GrpcBackend, user: DemoUser, origin: str | None = None) -> LogonAnswer:
    who = user.who
    request = LogonRequest(who.transaction, who.customer, who.user, user.password)
    raw = await backend.call(request, request.encode(), deadline=5, origin=origin)
    return LogonAnswer.decode(raw)


async def _lookup(
    backend: GrpcBackend, user: DemoUser, token: str, pnr: str, origin: str | None = None
) -> FejlNr:
    who = user.who
    request = LookupRequest(who.transaction, who.customer, token, who.user, pnr)
    raw = await backend.call(request, request.encode(), deadline=5, origin=origin)
    return FejlNr(raw[22:24].decode("ascii"))  # the answer header's FEJLNR (spec §4.3)


async def _lookups_per_replica(
    store: str, pnr: str, balancing: Balancing
) -> tuple[list[FejlNr], list[int]]:
    """LOOKUPS lookups one after another through one target naming two replicas; the
    answers, and how many calls each replica served."""
    async with replicas(2, store) as servers:
        config = _config(_ipv4([port for _server, port in servers]), balancing=balancing)
        async with backend_for(config) as backend:
            token = (await _logon(backend, DEMO_PRIV)).token
            answers = [await _lookup(backend, DEMO_PRIV, token, pnr) for _ in range(LOOKUPS)]
        return answers, [server.pace.calls for server, _port in servers]


async def test_round_robin_spreads_lookups_over_both_replicas(store: str, pnr: str) -> None:
    """The default balancing sends calls to both replicas behind one ipv4: target, and every
    lookup is answered (the session one replica issued is accepted by the other)."""
    answers, calls = await _lookups_per_replica(store, pnr, Balancing.ROUND_ROBIN)
    assert answers == [FejlNr.OK] * LOOKUPS
    assert sum(calls) == LOOKUPS + 1  # the logon, then one read call per lookup
    assert min(calls) > 0, calls


async def test_pick_first_keeps_every_call_on_the_first_replica(store: str, pnr: str) -> None:
    """balancing: pick_first sends everything to the first address while it serves."""
    answers, calls = await _lookups_per_replica(store, pnr, PICK_FIRST)
    assert answers == [FejlNr.OK] * LOOKUPS
    assert calls == [LOOKUPS + 1, 0]


@asynccontextmanager
async def grpc_defaults_server() -> AsyncIterator[int]:
    """A grpc.aio server with grpc's keepalive defaults (health only); its port."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


# Keepalive lives in grpc's core threads, not in the event loop: one loop is enough, and the
# idle wait is the test's whole cost.
@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_the_services_accept_keepalive_pings_that_grpc_defaults_refuse(
    store: str, pnr: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """An idle channel pinging every KEEPALIVE_S stays connected to the services (paired as in
    grpc_wire, scaled down) and its next lookup is answered; the same channel options against
    a server with grpc's defaults get GOAWAY "too_many_pings", so the pings are really sent."""
    paired = KEEPALIVE_S / 2
    async with (
        replicas(1, store, accepted_ping_interval=paired) as [(_server, ours)],
        grpc_defaults_server() as other,
    ):
        channels = {}
        for port in (ours, other):
            # pick_first: a connection closed by GOAWAY leaves the channel IDLE, where
            # round_robin would reconnect at once and look READY again.
            config = _config(f"127.0.0.1:{port}", keepalive=KEEPALIVE_S, balancing=PICK_FIRST)
            options = channel_options(config)
            channels[port] = grpc.aio.insecure_channel(config.target.uri, options=options)
        backend = GrpcBackend(_config(f"127.0.0.1:{ours}"), channels[ours])
        token = (await _logon(backend, DEMO_PRIV)).token
        await health_pb2_grpc.HealthStub(channels[other]).Check(health_pb2.HealthCheckRequest())
        await asyncio.sleep(IDLE_S)  # idle: only keepalive pings on either connection
        states = {port: channel.get_state() for port, channel in channels.items()}
        assert await _lookup(backend, DEMO_PRIV, token, pnr) is FejlNr.OK
        await backend.aclose()
        await channels[other].close()
    refusals = [line for line in capfd.readouterr().err.splitlines() if "too_many_pings" in line]
    assert states[ours] is grpc.ChannelConnectivity.READY  # the one connection is still up
    assert not [line for line in refusals if f"127.0.0.1:{ours}:" in line]  # grpc logs a GOAWAY
    assert states[other] is grpc.ChannelConnectivity.IDLE


def _directory(allow: IPNetwork) -> EmulatorConfig:
    """The shipped customers, customer 1 admitting only ``allow``."""
    customers = tuple(
        replace(customer, allow=(allow,)) if customer.number == 1 else customer
        for customer in CONFIG.customers
    )
    return replace(CONFIG, customers=customers)


async def test_a_trusted_gateways_client_address_decides_the_allow_list(store: str) -> None:
    """From a trusted peer the metadata address is checked: inside the customer's networks
    00, outside 16; without one the peer's own address (16 here); not an address: 16."""
    directory = _directory(CLIENTS_NETWORK)
    async with (
        replicas(1, store, directory, trusted_gateways=LOOPBACK) as [(_server, port)],
        backend_for(_config(f"127.0.0.1:{port}")) as backend,
    ):
        verdicts = [
            (await _logon(backend, DEMO_PRIV, origin)).fejlnr
            for origin in (ALLOWED, DENIED, None, "not-an-address")
        ]
    assert verdicts == [FejlNr.OK, *[FejlNr.IP_DENIED] * 3]


async def test_an_untrusted_peer_is_checked_by_its_own_address(store: str) -> None:
    """A peer outside --trusted-gateways may send any metadata: its own address is checked,
    so an allowed-looking address does not let it in, nor a foreign one keep it out."""
    directory = _directory(CLIENTS_NETWORK)
    elsewhere = (ipaddress.ip_network("10.0.0.0/8"),)
    for trusted in ((), elsewhere):
        async with (
            replicas(1, store, directory, trusted_gateways=trusted) as [(_server, port)],
            backend_for(_config(f"127.0.0.1:{port}")) as backend,
        ):
            refused = await _logon(backend, DEMO_PRIV, origin=ALLOWED)
            admitted = await _logon(backend, DEMO_OFF4, origin=DENIED)  # loopback allowed
        assert (refused.fejlnr, admitted.fejlnr) == (FejlNr.IP_DENIED, FejlNr.OK)


async def test_lookups_of_different_clients_are_never_batched_together(
    store: str, pnr: str
) -> None:
    """Lookups at once from an allowed and a refused client address still share calls, but
    never one call: each gets its own address's verdict (00 or 16)."""
    directory = _directory(CLIENTS_NETWORK)
    async with (
        replicas(1, store, directory, trusted_gateways=LOOPBACK) as [(_server, port)],
        backend_for(_config(f"127.0.0.1:{port}")) as backend,
    ):
        token = (await _logon(backend, DEMO_PRIV, ALLOWED)).token
        origins = [ALLOWED, DENIED] * 20
        got = await asyncio.gather(
            *(_lookup(backend, DEMO_PRIV, token, pnr, origin) for origin in origins)
        )
        reads = backend.reads
    expected = {ALLOWED: FejlNr.OK, DENIED: FejlNr.IP_DENIED}
    assert got == [expected[origin] for origin in origins]
    assert reads.items_sent == len(origins)
    assert reads.calls_sent < len(origins) / 4  # shared calls, one address each
