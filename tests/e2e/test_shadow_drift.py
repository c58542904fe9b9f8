"""Shadow comparison finds exactly the drift the new services were given, and no more.

Real emulator (the primary), real gRPC services with drift on a store migrated
from the same register, a real gateway from a routing.yaml that shadows every
lookup to the services. What the comparison must report is computed apart from
it: each used person is rendered as the register has it and as the drifted
services have it (:meth:`Drift.apply`, which picks persons with
:meth:`Drift.affects`), and the fields that differ are counted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cpr_accounts.clock import utc_now
from cpr_devtools.client import Endpoint, exchange, logon
from cpr_devtools.migration import migrate_register
from cpr_mainframe.register.store import Register
from cpr_services.drift import Drift
from cpr_services.server import ModernServer
from emulator_harness import (
    DEMO_OFF4,
    DEMO_PRIV,
    DemoUser,
    FakeClock,
    RunningEmulator,
    running_emulator,
)
from gateway.app import Gateway
from gateway.codec import LookupAnswer, LookupRequest, Record
from gateway.comparison import FieldKey, Thresholds
from gateway.config import load_routing
from gateway.domain.calendar import production_date
from gateway.model import Family, FejlNr
from gateway.observe.events import Event, ShadowCompleted
from gateway.render import render_answer
from gateway.shadow.noise import Tally, real_differences
from gateway.shadow.store import MismatchStore

LOOKUPS_PER_FAMILY = 100
DRIFT = Drift(standardadr_2023=True, stale_address=0.2, missing_record="050")
ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{primary}", tls: null}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
{noise_backend}
routes:
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 5s
    shadow:
      - {{backend: persons-v2, sample: 100%, deadline: 5s}}
{noise_route}
    compare: {{ignore: [{ignore}]}}
    thresholds: {{min_samples: 10, max_excess_rate: 0.01, noise_min_samples: 10}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
# Never shed: client, backends and gateway share the test's loop, so its lateness says
# nothing about the gateway (shedding is tested in test_shadow_runner.py).
shadowing: {{store: shadow.sqlite, key_file: shadow.key, shed_lag: 1m}}
# Every copy needs the services' token from the logon's repeat: on a busy machine their
# password check may outlast the default budget, so this test gives it room.
sessions: {{fan_out_timeout: 10s}}
# Every lookup audited (docs/audit.md): test_no_pnr_in_clear scans these files too.
audit: {{directory: audit}}
"""


@dataclass
class Stack:
    """The running parts and where the gateway keeps its mismatches."""

    primary: RunningEmulator
    gateway: Gateway
    endpoint: Endpoint
    store: Path


@asynccontextmanager
async def stack(tmp_path: Path, drift: Drift, *, noise: bool = False) -> AsyncIterator[Stack]:
    """The emulator, drifted services and a gateway shadowing lookups (and noise, if asked).

    With noise, the primary emulator runs two days ahead (its PRODDTO differs from
    everyone's) and a second, real-time emulator is the noise instance.
    """
    async with AsyncExitStack() as parts:
        # Two days ahead: its PRODDTO differs from the services' and the second emulator's.
        clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=2)) if noise else utc_now
        primary = await parts.enter_async_context(
            running_emulator(persons=300, tls=False, workdir=tmp_path / "emu", clock=clock)
        )
        ports = {"primary": primary.port, "noise_backend": "", "noise_route": ""}
        if noise:
            second = await parts.enter_async_context(
                running_emulator(persons=300, tls=False, workdir=tmp_path / "emu2")
            )
            ports["noise_backend"] = (
                f'  mainframe-2: {{kind: legacy, address: "127.0.0.1:{second.port}", tls: null}}'
            )
            ports["noise_route"] = "    noise: {backend: mainframe-2, sample: 100%}"
        migrate_register(primary.config.register, tmp_path / "modern.sqlite", progress=False)
        modern = ModernServer(primary.config, tmp_path / "modern.sqlite", drift=drift)
        ports["modern"] = await modern.start()
        parts.push_async_callback(modern.aclose, 0)
        ignore = '"lookup / 000 / PRODDTO"' if not noise else ""
        routing = tmp_path / "routing.yaml"
        routing.write_text(ROUTING.format(ignore=ignore, **ports), encoding="utf-8")
        gateway = Gateway(load_routing(routing), watch_interval=None)
        host, port = await gateway.start()
        parts.push_async_callback(gateway.aclose)
        yield Stack(primary, gateway, Endpoint(host, port), tmp_path / "shadow.sqlite")


async def _look_up_all(s: Stack, users: list[DemoUser], pnrs: list[str], *, copies: int = 1) -> int:
    """Every user looks up every PNR through the gateway, and every copy (``copies`` per
    lookup) has its outcome; returns how many lookups were made."""
    done = asyncio.Event()
    outcomes: list[ShadowCompleted] = []
    expected = len(users) * len(pnrs)

    def count(event: Event) -> None:
        if isinstance(event, ShadowCompleted):
            outcomes.append(event)
            if len(outcomes) == expected * copies:
                done.set()

    s.gateway.bus.subscribe(count)
    for user in users:
        who = user.who
        token = await logon(s.endpoint, who, user.password)
        for pnr in pnrs:
            record = LookupRequest(who.transaction, who.customer, token, who.user, pnr).encode()
            answer = LookupAnswer.decode(
                await exchange(s.endpoint, record), Family(who.transaction)
            )
            assert answer.fejlnr is FejlNr.OK
    async with asyncio.timeout(60):  # a hang fails; a normal run takes a moment
        await done.wait()
    assert {e.outcome for e in outcomes} <= {"match", "differs"}
    return expected


def _drifted_fields(
    s: Stack, drift: Drift, users: list[DemoUser], pnrs: list[str]
) -> Counter[FieldKey]:
    """Per field, in how many lookups the drift changes it: rendered both ways, compared here."""
    register = Register.open(s.primary.config.register)
    today = production_date()
    expected: Counter[FieldKey] = Counter()
    try:
        for user in users:
            family = Family(user.who.transaction)
            customer = s.primary.config.customer(int(user.who.customer))
            assert customer is not None
            for pnr in pnrs:
                person = register.get(pnr)
                assert person is not None
                clean = render_answer(person, family, customer.task, customer.number, today)
                drifted = render_answer(
                    drift.apply(person),
                    family,
                    drift.apply_task(customer.task),
                    customer.number,
                    today,
                )
                expected.update(_differences(family, clean, drifted))
    finally:
        register.close()
    return expected


def _differences(
    family: Family, clean: tuple[Record, ...], drifted: tuple[Record, ...]
) -> set[FieldKey]:
    """Keys of record counts and of fields (records paired by position within their type)."""
    ours, theirs = _decoded(family, clean), _decoded(family, drifted)
    keys: set[FieldKey] = set()
    for rectype in ours.keys() | theirs.keys():
        left, right = ours.get(rectype, []), theirs.get(rectype, [])
        if len(left) != len(right):
            keys.add(FieldKey("lookup", "set", rectype))
        for a, b in zip(left, right, strict=False):
            keys.update(
                FieldKey("lookup", rectype, name)
                for name in a.fields.keys() | b.fields.keys()
                if a.fields.get(name) != b.fields.get(name)
            )
    return keys


def _decoded(family: Family, records: tuple[Record, ...]) -> dict[str, list[Record]]:
    """The records as a client decodes them (every field of the layout), by type."""
    pnr = str(records[1].fields["PNR"])
    request = LookupRequest(family.value, "0001", "Tk3nAbCd", "DEMO0001", pnr)
    raw = LookupAnswer.for_request(request, FejlNr.OK, records).encode(family)
    grouped: dict[str, list[Record]] = {}
    for record in LookupAnswer.decode(raw, family).records:
        grouped.setdefault(record.type, []).append(record)
    return grouped


def _differing(tally: Tally) -> Counter[FieldKey]:
    return Counter({key: stats.differs for key, stats in tally.fields.items() if stats.differs})


async def test_the_comparison_names_exactly_the_injected_drift(tmp_path: Path) -> None:
    """Drifted fields, and only they, differ, as often as the drift changes them."""
    async with stack(tmp_path, DRIFT) as s:
        pnrs = s.primary.pnrs(LOOKUPS_PER_FAMILY)
        users = [DEMO_PRIV, DEMO_OFF4]
        compared = await _look_up_all(s, users, pnrs)
        expected = _drifted_fields(s, DRIFT, users, pnrs)
        # Every kind of drift shows up among these persons, so the equality below means something.
        assert {key.field for key in expected} >= {"STANDARDADR", "HUSNR", "TILFLYDTO", "050"}
        assert sum(DRIFT.affects(pnr) for pnr in pnrs) > 0
        tally = s.gateway.shadows.tally("lookups", "persons-v2")
        assert tally.operations["lookup"].compared == compared
        assert _differing(tally) == expected
        drifted_fields = s.gateway.metrics.value(
            "cpr_gateway_shadow_field_differences_total",
            operation="lookup",
            record="001",
            field="HUSNR",
        )
        assert drifted_fields == expected[FieldKey("lookup", "001", "HUSNR")]
    with MismatchStore.open(s.store, prune=False) as store:
        assert _differing(store.tally("lookups", "persons-v2")) == expected


async def test_a_field_that_differs_between_two_primaries_is_noise(tmp_path: Path) -> None:
    """PRODDTO differs on every copy but also between two primaries: not a real difference."""
    drift = Drift(standardadr_2023=True)
    async with stack(tmp_path, drift, noise=True) as s:
        pnrs = s.primary.pnrs(30)
        compared = await _look_up_all(s, [DEMO_PRIV], pnrs, copies=2)
        tally = s.gateway.shadows.tally("lookups", "persons-v2")
        production_day = tally.fields[FieldKey("lookup", "000", "PRODDTO")]
        assert production_day.differs == production_day.samples == compared
        assert production_day.noise_differs == production_day.noise_samples == compared
        thresholds = Thresholds(min_samples=10, max_excess_rate=0.01, noise_min_samples=10)
        real = real_differences(tally, "lookup", thresholds)
        assert FieldKey("lookup", "000", "PRODDTO") not in real
        assert FieldKey("lookup", "001", "STANDARDADR") in real
