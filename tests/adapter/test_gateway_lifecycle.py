"""Gateway lifecycle: admin endpoints, graceful drain, stragglers, signals, bad certificates."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from gateway_harness import (
    LOGON,
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    canned,
    gateway_config,
    held,
    next_event,
    running,
)

from cpr_devtools.client import Endpoint, exchange
from gateway.app import Gateway, run_gateway
from gateway.config.schema import Admin, ServerTls
from gateway.errors import ConfigError
from gateway.observe.events import Lifecycle
from gateway.runtime.tasks import TaskSet


async def _get(gateway: Gateway, path: str) -> tuple[int, str]:
    host, port = gateway.admin_address
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{host}:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def test_admin_endpoints_answer() -> None:
    """/healthz and /readyz say ok while serving; /metrics exports the request series."""
    async with backend_server(canned()) as port, running(gateway_config(port)) as run:
        await exchange(run.client, LOOKUP.encode())
        assert await _get(run.gateway, "/healthz") == (200, "ok\n")
        assert await _get(run.gateway, "/readyz") == (200, "ready\n")
        status, text = await _get(run.gateway, "/metrics")
    assert status == 200
    assert (
        'cpr_gateway_requests_total{backend="mainframe",fejlnr="00",operation="lookup",route="all"}'
        " 1.0"
    ) in text
    for name in (
        "cpr_gateway_request_duration_seconds_bucket",
        'cpr_gateway_rejected_total{reason="timeout"} 0.0',
        "cpr_gateway_connections_in_flight",
    ):
        assert name in text
    assert "0101601234" not in text


async def test_graceful_shutdown_lets_an_in_flight_request_finish() -> None:
    """On shutdown: not ready, no new connections, but the request in flight gets its answer."""
    arrived, release = asyncio.Event(), asyncio.Event()
    async with backend_server(held(arrived, release)) as port:
        gateway = Gateway(gateway_config(port, grace_period=10.0))
        _host, client_port = await gateway.start()
        client = Endpoint("127.0.0.1", client_port)
        draining = next_event(gateway, Lifecycle)
        async with asyncio.TaskGroup() as tasks:
            answer = tasks.create_task(exchange(client, LOOKUP.encode()))
            await arrived.wait()
            assert gateway.metrics.value("cpr_gateway_connections_in_flight") == 1
            closing = tasks.create_task(gateway.aclose())
            await draining.wait()
            assert (await _get(gateway, "/readyz"))[0] == 503
            with pytest.raises(ConnectionRefusedError):
                await exchange(client, LOGON.encode())
            assert not closing.done()
            release.set()
        assert answer.result() == LOOKUP_ANSWER
        assert gateway.metrics.value("cpr_gateway_connections_in_flight") == 0


async def test_stragglers_are_cancelled_after_the_grace_period() -> None:
    """A request still running when the grace period ends is cut off and shutdown completes."""
    arrived, never = asyncio.Event(), asyncio.Event()
    async with backend_server(held(arrived, never)) as port:
        config = gateway_config(port, grace_period=0.2, deadline=60.0)
        async with running(config) as run:
            async with asyncio.TaskGroup() as tasks:
                answer = tasks.create_task(exchange(run.client, LOOKUP.encode()))
                await arrived.wait()
                await run.gateway.aclose()
            assert answer.result() == b""
            assert run.gateway.metrics.value("cpr_gateway_connections_in_flight") == 0
        never.set()  # let the fake backend's handler end


async def test_serve_drains_on_sigterm() -> None:
    """SIGTERM ends serve() through a graceful drain: it returns, and the port is closed."""
    gateway = Gateway(gateway_config(0))
    listening = next_event(gateway, Lifecycle)
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(gateway.serve())
        await listening.wait()
        assert gateway.ready()
        os.kill(os.getpid(), signal.SIGTERM)
    assert serving.result() is None
    assert not gateway.ready()


async def test_run_gateway_returns_when_stopped() -> None:
    """run_gateway, the CLI's entry, serves a config until told to stop."""
    stop = asyncio.Event()
    stop.set()
    await run_gateway(gateway_config(0), stop=stop)


async def test_run_gateway_can_settle_its_heap_once_started() -> None:
    """The CLI's process exempts its start-up heap from collections (gateway.runtime.heap)."""
    stop = asyncio.Event()
    stop.set()
    gc.unfreeze()
    try:
        await run_gateway(gateway_config(0), stop=stop)
        assert gc.get_freeze_count() == 0  # not unless asked: tests run in-process
        await run_gateway(gateway_config(0), stop=stop, settle_heap=True)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_unloadable_certificate_is_a_config_error(tmp_path: Path) -> None:
    """A missing key file fails start() with a ConfigError naming listen.tls."""
    tls = ServerTls(tmp_path / "gateway.crt", tmp_path / "gateway.key")
    gateway = Gateway(gateway_config(0, listen_tls=tls))
    with pytest.raises(ConfigError) as caught:
        await gateway.start()
    [problem] = caught.value.problems
    assert problem.startswith(f"listen.tls: cannot load {tmp_path / 'gateway.crt'}")


@pytest.mark.parametrize("which", ["listen", "admin"])
async def test_an_address_in_use_is_a_config_error(which: str) -> None:
    """A port another process holds fails start() naming the setting, and leaves nothing open."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = gateway_config(0)
        if which == "listen":
            config = replace(config, listen=replace(config.listen, port=port))
        else:
            config = replace(config, admin=Admin("127.0.0.1", port))
        with pytest.raises(ConfigError) as caught:
            await Gateway(config).start()
    assert caught.value.problems == [
        f"{which}: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


async def test_task_set_drain_waits_then_cancels_with_a_reason() -> None:
    """Drain lets quick tasks finish, cancels the rest with the reason, and counts them."""
    tasks = TaskSet()
    release = asyncio.Event()
    reasons: list[str] = []

    async def quick() -> None:
        await release.wait()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            reasons.append(str(exc.args[0]))
            raise

    done = tasks.spawn(quick(), name="quick")
    cut = tasks.spawn(stuck(), name="stuck")
    assert (done.get_name(), len(tasks)) == ("quick", 2)
    release.set()
    assert await tasks.drain(0.2, "grace period over") == 1
    assert done.done() and not done.cancelled()
    assert cut.cancelled()
    assert reasons == ["grace period over"]
    assert len(tasks) == 0
