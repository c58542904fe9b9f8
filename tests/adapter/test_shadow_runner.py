"""Shadow copies through the real gateway: off the answer path, bounded, token-brokered, stored.

The primary and the shadow are real asyncio servers on loopback speaking CPR
Direkte; the shadow answers logons with its own token, so a copy that reaches it
with the client's token would be a brokering bug the test sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import structlog
from gateway_harness import (
    LOGON,
    LOOKUP,
    LOOKUP_ANSWER,
    PNR,
    TOKEN,
    Running,
    backend_server,
    canned,
    gateway_config,
    read_request,
    running,
)

from cpr_devtools.client import exchange
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import FramedRequest, LogonAnswer, LookupAnswer, Record, seal
from gateway.codec.headers import request_with_token
from gateway.comparison import FieldKey, Shadow
from gateway.config.schema import (
    BUCKETS,
    GatewayConfig,
    Match,
    Route,
    Shadowing,
)
from gateway.config.shadows import shadow_policies
from gateway.model import Family, FejlNr, Operation
from gateway.observe.events import (
    Event,
    EventBus,
    LoopLagSampled,
    RequestCompleted,
    ShadowCompleted,
)
from gateway.observe.logs import configure_logging
from gateway.runtime.pressure import SAMPLE_INTERVAL_S, SUSTAINED_SAMPLES
from gateway.sessions.table import SessionBroker
from gateway.shadow.pseudonym import load_key
from gateway.shadow.runner import ShadowJob, ShadowRunner
from gateway.shadow.sealing import Sealer
from gateway.shadow.store import MismatchStore

SHADOW_TOKEN = "Sh4dowTk"
SHADOW_LOGON_ANSWER = LogonAnswer("0001", "DEMO0001", FejlNr.OK, token=SHADOW_TOKEN).encode()
#: What the shadow answers when it disagrees: another last name.
DIFFERENT_ANSWER = LookupAnswer.for_request(
    LOOKUP,
    FejlNr.OK,
    seal(
        [
            Record("000", {"PNR": "0" * 10, "OPGAVENR": "000101", "PRODDTO": None}),
            Record("001", {"PNR": PNR, "KOEN": "M", "STATUS": "01", "EFTERNVN": "Jensen"}),
        ],
        Family.PRIV,
    ),
).encode(Family.PRIV)
#: Lookup answer behaviour of the shadow side: (writer) → None.
Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def replying(answer: bytes) -> Answer:
    """The shadow answers every lookup with ``answer``."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()

    return reply


def holding(arrived: asyncio.Event, release: asyncio.Event) -> Answer:
    """The shadow signals each copy's arrival and answers only once ``release`` is set."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await release.wait()
        writer.write(LOOKUP_ANSWER)
        await writer.drain()

    return reply


def shadow_side(lookup: Answer, received: list[bytes]) -> Callable[..., Awaitable[None]]:
    """A CPR Direkte server with its own tokens: logons get SHADOW_TOKEN."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        received.append(request)
        if len(request) == len(LOGON.encode()):
            writer.write(SHADOW_LOGON_ANSWER)
            await writer.drain()
        else:
            await lookup(writer)

    return handle


@dataclass
class EventLog:
    """Every event of a gateway, in order, and a way to wait for some of them."""

    events: list[Event | str] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def __call__(self, event: Event | str) -> None:
        self.events.append(event)
        self.changed.set()

    def shadows(self) -> list[ShadowCompleted]:
        return [e for e in self.events if isinstance(e, ShadowCompleted)]

    async def until_shadows(self, count: int) -> list[ShadowCompleted]:
        """Wait until ``count`` shadow outcomes were emitted (a hang fails via the timeout)."""
        async with asyncio.timeout(30):
            while len(self.shadows()) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.shadows()


def shadowed_config(
    primary: int, shadow: int, tmp_path: Path, *, deadline: float, bounds: tuple[int, int]
) -> GatewayConfig:
    """Lookups to ``mainframe`` shadowed 100% to ``persons-v2``; the rest to ``mainframe``."""
    base = gateway_config(primary, grace_period=0.1)
    lookups = Route(
        "lookups",
        Match(frozenset({Operation.LOOKUP})),
        "mainframe",
        2.0,
        (Shadow("persons-v2", BUCKETS, deadline),),
    )
    backends = {
        **base.backends,
        "persons-v2": LegacyBackendConfig("persons-v2", "127.0.0.1", shadow, None),
    }
    # Never shed: client, backends and gateway share the test's loop, so its lateness says
    # nothing about the gateway (shedding has a test of its own below).
    shadowing = Shadowing(
        *bounds, store=tmp_path / "shadow.sqlite", key_file=tmp_path / "shadow.key", shed_lag=60.0
    )
    return replace(base, backends=backends, routes=(lookups, *base.routes), shadowing=shadowing)


@asynccontextmanager
async def stack(
    tmp_path: Path, lookup: Answer, *, deadline: float = 10.0, bounds: tuple[int, int] = (64, 256)
) -> AsyncIterator[tuple[Running, EventLog, list[bytes]]]:
    """Primary, shadow and gateway running; the client has logged on through the gateway."""
    received: list[bytes] = []
    log = EventLog()
    async with (
        backend_server(canned()) as primary,
        backend_server(shadow_side(lookup, received)) as shadow,
        running(
            shadowed_config(primary, shadow, tmp_path, deadline=deadline, bounds=bounds)
        ) as run,
    ):
        assert LogonAnswer.decode(await exchange(run.client, LOGON.encode())).token == TOKEN
        run.gateway.bus.subscribe(log)
        yield run, log, received


def shadow_count(run: Running, outcome: str) -> float:
    return run.gateway.metrics.value(
        "cpr_gateway_shadow_requests_total",
        operation="lookup",
        backend="persons-v2",
        outcome=outcome,
    )


async def test_the_client_is_answered_before_a_late_shadow_times_out(tmp_path: Path) -> None:
    """A shadow past its deadline: the answer and RequestCompleted come first; outcome timeout."""
    arrived, never = asyncio.Event(), asyncio.Event()
    async with stack(tmp_path, holding(arrived, never), deadline=1.0) as (run, log, received):
        answer = await exchange(run.client, LOOKUP.encode())
        log("client answered")
        assert answer == LOOKUP_ANSWER
        (outcome,) = await log.until_shadows(1)
        assert (outcome.outcome, outcome.reason) == ("timeout", "timeout")
        order = [
            e if isinstance(e, str) else type(e).__name__
            for e in log.events
            if isinstance(e, str | RequestCompleted | ShadowCompleted)
        ]
        assert order == ["RequestCompleted", "client answered", "ShadowCompleted"]
        assert arrived.is_set()
        # The copy carried the shadow side's own token, brokered from the fan-out logon.
        assert received[-1] == request_with_token(LOOKUP.encode(), SHADOW_TOKEN)
        assert shadow_count(run, "timeout") == 1
        never.set()  # let the shadow server's handler end


async def test_copies_beyond_the_bounds_are_dropped_and_counted(tmp_path: Path) -> None:
    """With one slot and one queue place, a held shadow makes further copies drop."""
    arrived, release = asyncio.Event(), asyncio.Event()
    async with stack(tmp_path, holding(arrived, release), bounds=(1, 1)) as (run, log, _received):
        for _ in range(4):
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
        await arrived.wait()
        assert [(e.outcome, e.reason) for e in log.shadows()] == [("dropped", "queue_full")] * 2
        assert run.gateway.metrics.value("cpr_gateway_shadow_queue_depth") == 1
        assert (run.gateway.shadows.in_flight, run.gateway.shadows.queued) == (1, 1)
        release.set()
        outcomes = await log.until_shadows(4)
        assert sorted(e.outcome for e in outcomes) == ["dropped", "dropped", "match", "match"]
        assert shadow_count(run, "dropped") == 2
        assert shadow_count(run, "match") == 2
        assert run.gateway.metrics.value("cpr_gateway_shadow_queue_depth") == 0


async def test_shutdown_drops_waiting_copies_and_cancels_running_ones(tmp_path: Path) -> None:
    """Closing the gateway with a held copy and a queued one reports both as dropped."""
    arrived, never = asyncio.Event(), asyncio.Event()
    async with stack(tmp_path, holding(arrived, never), bounds=(1, 1)) as (run, log, _received):
        for _ in range(2):
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
        await arrived.wait()
        await run.gateway.aclose()
        assert [(e.outcome, e.reason) for e in log.shadows()] == [("dropped", "shutdown")] * 2
        never.set()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logs captured in memory; structlog's defaults are restored afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    structlog.reset_defaults()


async def test_a_differing_field_is_counted_logged_and_stored_without_the_pnr(
    tmp_path: Path, log_output: io.StringIO
) -> None:
    """The shadow's other last name: outcome differs, 001/EFTERNVN counted, logged, stored."""
    async with stack(tmp_path, replying(DIFFERENT_ANSWER)) as (run, log, _received):
        assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
        (outcome,) = await log.until_shadows(1)
        assert outcome.outcome == "differs"
        assert ("001", "EFTERNVN") in outcome.fields
        differences = run.gateway.metrics.value(
            "cpr_gateway_shadow_field_differences_total",
            operation="lookup",
            record="001",
            field="EFTERNVN",
        )
        assert differences == 1
        tally = run.gateway.shadows.tally("lookups", "persons-v2")
        assert tally.fields[FieldKey("lookup", "001", "EFTERNVN")].differs == 1
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (logged,) = [line for line in lines if line["event"] == "shadow_differs"]
    assert (logged["route"], logged["backend"]) == ("lookups", "persons-v2")
    assert "001/EFTERNVN" in logged["fields"]
    assert PNR not in log_output.getvalue()
    # The gateway is closed: its writer has flushed the store. Its values open with its key.
    sealer = Sealer(load_key(tmp_path / "shadow.key"))
    with MismatchStore.open(tmp_path / "shadow.sqlite", prune=False, sealer=sealer) as store:
        (example,) = store.examples("lookups", "persons-v2", FieldKey("lookup", "001", "EFTERNVN"))
        assert (example.primary, example.candidate) == ("Hansen", "Jensen")
        assert example.subject.startswith("p:")
        assert PNR not in example.subject
    stored = (tmp_path / "shadow.sqlite").read_bytes()
    assert PNR.encode() not in stored
    assert b"Hansen" not in stored and b"Jensen" not in stored  # sealed at rest


async def test_a_session_without_a_shadow_token_is_an_error_and_sends_nothing(
    tmp_path: Path,
) -> None:
    """A token the gateway never brokered: the client is answered, the copy is no_session."""
    async with stack(tmp_path, replying(LOOKUP_ANSWER)) as (run, log, received):
        sent_before = len(received)
        stranger = LOOKUP.encode().replace(TOKEN.encode(), b"Unkn0wnT")
        answer = await exchange(run.client, stranger)
        assert LookupAnswer.decode(answer, Family.PRIV).fejlnr is FejlNr.OK
        (outcome,) = await log.until_shadows(1)
        assert (outcome.outcome, outcome.reason) == ("error", "no_session")
        assert len(received) == sent_before
        assert shadow_count(run, "error") == 1


async def test_a_matching_shadow_makes_a_clean_verdict_after_enough_samples(
    tmp_path: Path,
) -> None:
    """Identical answers (tokens aside): every outcome is match and the verdict turns clean."""
    async with stack(tmp_path, replying(LOOKUP_ANSWER)) as (run, log, _received):
        for _ in range(30):  # the default thresholds' min_samples
            assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
        outcomes = await log.until_shadows(30)
        assert {e.outcome for e in outcomes} == {"match"}
        verdict = run.gateway.metrics.value(
            "cpr_gateway_shadow_verdict",
            route="lookups",
            backend="persons-v2",
            operation="lookup",
            verdict="clean",
        )
        assert verdict == 1


async def test_copies_offered_while_the_loop_is_late_are_dropped_as_overload() -> None:
    """Past ``shadowing.shed_lag`` a copy is not sent but counted as dropped (``overload``);
    once the loop is on time again copies go out as before."""
    bus, seen, sent = EventBus(), EventLog(), []
    bus.subscribe(seen)

    class Backends:
        async def call(self, backend: str, request: FramedRequest, *, deadline: float) -> bytes:
            sent.append(backend)
            return LOOKUP_ANSWER

    lag = [0.5]
    runner = ShadowRunner(
        bus, SessionBroker(idle_s=60, clock=lambda: 0.0), lag=lambda: lag[0], shed_lag_s=0.01
    )
    route = Route(
        "lookups",
        Match(frozenset({Operation.LOOKUP})),
        "mainframe",
        2.0,
        (Shadow("persons-v2", BUCKETS, 1.0),),
    )
    policy = shadow_policies([route])[route.name]
    client = FramedRequest(LOOKUP, LOOKUP.encode())
    job = ShadowJob(policy, "mainframe", route.shadows, None, client, LOOKUP_ANSWER, Backends())
    runner.submit(job)
    assert [(e.outcome, e.reason) for e in seen.shadows()] == [("dropped", "overload")]
    lag[0] = 0.0
    runner.submit(job)
    await seen.until_shadows(2)
    await runner.aclose(1.0)
    # Not shed: it ran (and found no session for the shadow side, as none was logged on).
    assert [(e.outcome, e.reason) for e in seen.shadows()][1] == ("error", "no_session")
    assert sent == []


async def test_the_gateway_samples_its_event_loop_while_serving_and_exports_the_lag(
    tmp_path: Path,
) -> None:
    """While a connection is being served the gateway keeps sampling its loop, and the gauge
    shows the latest sample; once none is, one punctual sample, then no more wake-ups."""
    async with stack(tmp_path, replying(LOOKUP_ANSWER)) as (run, log, _received):

        def sampled() -> list[float]:
            return [e.lag_s for e in log.events if isinstance(e, LoopLagSampled)]

        _reader, writer = await asyncio.open_connection(run.client.host, run.client.port)
        async with asyncio.timeout(5):  # a client that has not sent its record yet
            while len(sampled()) < SUSTAINED_SAMPLES:
                log.changed.clear()
                await log.changed.wait()
        recent = sampled()[-SUSTAINED_SAMPLES:]
        assert run.gateway.loop_lag() == pytest.approx(sum(recent) / len(recent))
        gauge = run.gateway.metrics.value("cpr_gateway_event_loop_lag_seconds")
        assert gauge == sampled()[-1]
        assert "cpr_gateway_event_loop_lag_seconds" in run.gateway.metrics.render().decode()

        writer.close()  # the gateway sees the close and drops the connection: idle again
        # Not "until a sample of 0.0": a busy-enough loop samples 0.0 too (uvloop's clock
        # counts whole milliseconds), so only the sampler can say it has parked.
        async with asyncio.timeout(5):
            while not run.gateway.loop_lag.parked:
                log.changed.clear()
                await log.changed.wait()
        assert sampled()[-1] == 0.0 and run.gateway.loop_lag() == 0.0
        count = len(sampled())
        await asyncio.sleep(10 * SAMPLE_INTERVAL_S)
        assert len(sampled()) == count  # parked: no timer while nothing is served
        assert run.gateway.metrics.value("cpr_gateway_event_loop_lag_seconds") == 0.0
