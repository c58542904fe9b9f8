"""docs/canary.md, "Writes": a write route switches whole, and a rollback loses no write.

A real emulator (the primary), the real services (the candidate) and a gateway whose
subscription route carries a [0, 100] plan with a dual-write shadow. At 100% the services
answer every subscription and a dual-write copy still reaches the mainframe; after a
rollback the mainframe holds the subscriptions made while the services answered them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cpr_accounts.state import StateStore
from cpr_devtools.client import Endpoint, logon, lookup
from cpr_devtools.migration import migrate_register
from cpr_services.server import ModernServer
from emulator_harness import DEMO_PRIV, running_emulator
from gateway.app import Gateway
from gateway.canary.model import Status
from gateway.codec.headers import answer_fejlnr
from gateway.config import load_routing
from gateway.observe.events import Event, ShadowCompleted

#: A hang fails the test; a normal run takes seconds.
PATIENCE_S = 60
ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
limits: {{read_timeout: 5s, max_connections: 64, grace_period: 2s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{legacy}", tls: null, connect_timeout: 1s}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
canary: {{store: canary.sqlite}}
routes:
  - name: subscriptions
    match: {{operation: [subscribe, unsubscribe]}}
    backend: mainframe
    deadline: 5s
    shadow: [{{backend: persons-v2, sample: 100%, deadline: 5s, dual_write: true}}]
    canary: {{candidate: persons-v2, steps: [0, 100], interval: 60m}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
"""


async def test_subscriptions_made_at_100_percent_are_on_the_mainframe_after_a_rollback(
    tmp_path: Path,
) -> None:
    async with running_emulator(persons=50, tls=False, workdir=tmp_path / "emu") as emu:
        migrate_register(emu.config.register, tmp_path / "modern.sqlite", progress=False)
        modern = ModernServer(emu.config, tmp_path / "modern.sqlite")
        routing = tmp_path / "routing.yaml"
        routing.write_text(ROUTING.format(legacy=emu.port, modern=await modern.start()))
        gateway = Gateway(load_routing(routing), watch_interval=None)
        copies: asyncio.Queue[ShadowCompleted] = asyncio.Queue()

        def on(event: Event) -> None:
            if isinstance(event, ShadowCompleted):
                copies.put_nowait(event)

        gateway.bus.subscribe(on)
        try:
            endpoint = Endpoint(*await gateway.start())
            assert gateway.canary is not None
            status = await gateway.canary.promote("subscriptions", who="ops")
            assert status.state.status is Status.COMPLETED
            assert status.weights == {"mainframe": 0.0, "persons-v2": 100.0}
            who = DEMO_PRIV.who
            token = await logon(endpoint, who, DEMO_PRIV.password)
            pnrs = emu.pnrs(3)
            for pnr in pnrs:
                answer = await lookup(endpoint, who, token, pnr, abon_type="1", data_type="0")
                assert answer_fejlnr(answer) == b"00"
                async with asyncio.timeout(PATIENCE_S):
                    copy = await copies.get()  # the dual-write copy reached the other side
                assert (copy.backend, copy.outcome) == ("mainframe", "match")
            answered = gateway.metrics.value(
                "cpr_gateway_requests_total", operation="subscribe", route="subscriptions",
                backend="persons-v2", fejlnr="00",
            )  # fmt: skip
            assert answered == 3  # the services answered every subscription
            rolled = await gateway.canary.rollback("subscriptions", who="ops", reason="test")
            assert rolled.weights == {"mainframe": 100.0, "persons-v2": 0.0}
        finally:
            await gateway.aclose()
            await modern.aclose(0)
        state = StateStore.open(emu.config.state)
        try:
            held = state.subscriptions.of(int(who.customer))
        finally:
            state.close()
        assert sorted(held) == sorted(pnrs)  # none lost: the mainframe has every one
