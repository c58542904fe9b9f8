"""Shadow keys of routing.yaml: what loads, what is refused (by path), how the router samples."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.codec import LogonRequest, LookupRequest
from gateway.comparison import KeyPattern, Noise, Normaliser, Shadow, Thresholds
from gateway.config import check_config, diff_tables, load_routing
from gateway.config.diff import restart_needed
from gateway.config.schema import (
    BUCKETS,
    Match,
    Retention,
    Route,
    Shadowing,
    Split,
    SplitKey,
)
from gateway.model import Operation
from gateway.routing import RouteTable

HEAD = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
backends:
  mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}
  mainframe-2: {kind: legacy, address: "127.0.0.1:5001", tls: null}
  persons-v2: {kind: legacy, address: "127.0.0.1:5002", tls: null}
  persons-v3: {kind: legacy, address: "127.0.0.1:5003", tls: null}
"""
REST = """\
  - name: rest
    match: {}
    backend: mainframe
    deadline: 5s
"""
SHADOWED = f"""{HEAD}routes:
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 2s
    shadow:
      - backend: persons-v2
        sample: 100%
        deadline: 1s
      - {{backend: persons-v3, sample: 12.5}}
    noise: {{backend: mainframe-2, sample: 20%}}
    compare:
      ignore: ["lookup / 000 / PRODDTO"]
      normalise: {{"lookup / 001 / STANDARDADR": [trim]}}
    thresholds: {{min_samples: 50, max_excess_rate: 0.02}}
{REST}shadowing:
  max_in_flight: 8
  max_queued: 0
  store: var/shadow.sqlite
  key_file: var/shadow.key
  retention: {{max_rows: 1000, max_age: 7d}}
  shed_lag: 25ms
"""
# Synthetic PNRs with valid birth dates (spec §9); none is a real person's.
PNRS = [
    f"{day:02d}0{month}6{serial:04d}"
    for day in range(1, 29)
    for month in (1, 5)
    for serial in (1234, 4321, 5555, 8)
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _route(text: str) -> str:
    """A config whose first route is ``text`` (YAML lines of one list item), then ``rest``."""
    return f"{HEAD}routes:\n{text}{REST}"


def _problems(tmp_path: Path, text: str) -> list[str]:
    return check_config(_write(tmp_path, text))


def _lookup(pnr: str, abon_type: str = "0") -> LookupRequest:
    return LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", pnr, abon_type)


def test_a_shadowed_route_becomes_frozen_values(tmp_path: Path) -> None:
    """shadow, noise, compare, thresholds and shadowing land in their dataclass fields."""
    config = load_routing(_write(tmp_path, SHADOWED))
    route = config.routes[0]
    assert route.shadows == (
        Shadow("persons-v2", BUCKETS, 1.0),
        Shadow("persons-v3", 1250, 2.0),  # the deadline defaults to the route's
    )
    assert route.noise == Noise("mainframe-2", 2000)
    assert route.compare.ignore == (KeyPattern("lookup", "000", "PRODDTO"),)
    assert route.compare.normalise == (
        (KeyPattern("lookup", "001", "STANDARDADR"), (Normaliser.TRIM,)),
    )
    assert route.thresholds == Thresholds(min_samples=50, max_excess_rate=0.02)
    assert route.copy_backends == ("persons-v2", "persons-v3", "mainframe-2")
    assert config.shadowing == Shadowing(
        8,
        0,
        tmp_path / "var/shadow.sqlite",
        tmp_path / "var/shadow.key",
        Retention(1000, 604800.0),
        shed_lag=0.025,
    )


def test_without_shadow_keys_nothing_is_copied(tmp_path: Path) -> None:
    """A route without shadow has no copies, and shadowing takes its defaults."""
    config = load_routing(_write(tmp_path, _route("")))
    assert config.routes[0].shadows == ()
    assert config.routes[0].noise is None
    assert config.shadowing == Shadowing()


SHADOW_ONLY = """\
  - name: first
    match: {operation: [OPS]}
    backend: mainframe
    deadline: 2s
    shadow: [{backend: persons-v2DUAL}]
"""


@pytest.mark.parametrize(
    ("operations", "dual", "problem"),
    [
        (
            "lookup, subscribe",
            "",
            "routes[0].shadow[0]: route matches subscribe, a write; "
            "shadowing it needs dual_write: true",
        ),
        (
            "subscribe, unsubscribe",
            "",
            "routes[0].shadow[0]: route matches subscribe and unsubscribe, writes; "
            "shadowing it needs dual_write: true",
        ),
        (
            "change_password",
            ", dual_write: true",
            "routes[0].shadow[0]: route matches change_password, which is never shadowed "
            "(a password changes on one side only); give the shadow a route without it",
        ),
        (
            "lookup",
            ", dual_write: true",
            "routes[0].shadow[0].dual_write: the route matches no write (subscribe, unsubscribe)",
        ),
    ],
)
def test_what_a_shadow_may_copy_is_checked_at_load(
    tmp_path: Path, operations: str, dual: str, problem: str
) -> None:
    """Writes need dual_write, password changes are never copied, dual_write needs a write."""
    text = SHADOW_ONLY.replace("OPS", operations).replace("DUAL", dual)
    assert _problems(tmp_path, _route(text)) == [problem]


def test_a_write_route_with_dual_write_loads(tmp_path: Path) -> None:
    """subscribe and unsubscribe may be copied when the shadow says dual_write: true."""
    text = SHADOW_ONLY.replace("OPS", "subscribe, unsubscribe").replace(
        "DUAL", ", dual_write: true"
    )
    config = load_routing(_write(tmp_path, _route(text)))
    assert config.routes[0].shadows == (Shadow("persons-v2", BUCKETS, 2.0, dual_write=True),)


def test_a_catch_all_route_cannot_be_shadowed(tmp_path: Path) -> None:
    """The catch-all also matches change_password, so a shadow on it is refused."""
    text = f"{HEAD}routes:\n  - {{name: all, match: {{}}, backend: mainframe, deadline: 5s,"
    text += " shadow: [{backend: persons-v2, dual_write: true}]}\n"
    assert _problems(tmp_path, text) == [
        "routes[0].shadow[0]: route matches change_password, which is never shadowed "
        "(a password changes on one side only); give the shadow a route without it"
    ]


BASE = """\
  - name: first
    match: {operation: [lookup]}
    backend: mainframe
    deadline: 2s
    shadow: [{backend: persons-v2, sample: 100%}]
"""


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "persons-v2, sample",
            "persons-v9, sample",
            "routes[0].shadow[0].backend: unknown backend 'persons-v9'",
        ),
        (
            "sample: 100%",
            "sample: lots",
            "routes[0].shadow[0].sample: expected a percentage like 20% or 100%, got 'lots'",
        ),
        (
            "sample: 100%",
            "sample: 101%",
            "routes[0].shadow[0].sample: expected a percentage from 0 to 100, got 101.0",
        ),
        (
            "sample: 100%",
            "sample: 100%, deadline: 0s",
            "routes[0].shadow[0].deadline: must be greater than 0, got '0s'",
        ),
        (
            "sample: 100%",
            "sample: 100%, mirror: true",
            "routes[0].shadow[0].mirror: unknown key (expected backend, sample, deadline, "
            "dual_write)",
        ),
        (
            "persons-v2, sample",
            "mainframe, sample",
            "routes[0].shadow[0].backend: 'mainframe' is the route's own backend",
        ),
        (
            "[{backend: persons-v2, sample: 100%}]",
            "[{backend: persons-v2}, {backend: persons-v2}]",
            "routes[0].shadow[1].backend: 'persons-v2' is shadowed twice (see shadow[0])",
        ),
        ("[{backend: persons-v2, sample: 100%}]", "[]", BASE),
        (
            "sample: 100%}]",
            "sample: 100%}]\n    noise: {backend: nowhere, sample: 5%}",
            "routes[0].noise.backend: unknown backend 'nowhere'",
        ),
        (
            "sample: 100%}]",
            "sample: 100%}]\n    noise: {backend: mainframe, sample: 5%}",
            "routes[0].noise.backend: 'mainframe' is one of the route's own backends; noise "
            "needs a second instance of the primary side under its own backend name",
        ),
        (
            "sample: 100%}]",
            "sample: 100%}]\n    compare: {ignore: ['lookup / 001 / STANDARDDR']}",
            "routes[0].compare.ignore[0]: 'lookup / 001 / STANDARDDR' matches no field of "
            "any answer",
        ),
        (
            "sample: 100%}]",
            "sample: 100%}]\n    thresholds: {min_samples: 0}",
            "routes[0].thresholds.min_samples: expected a whole number of at least 1, got 0",
        ),
    ],
)
def test_each_shadow_problem_is_named_by_its_yaml_path(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    """A single mistake in a shadow key yields one message naming its path and the value."""
    assert old in BASE
    if problem == BASE:  # an empty list
        problem = "routes[0].shadow: expected a non-empty list of shadows, got []"
    assert _problems(tmp_path, _route(BASE.replace(old, new, 1))) == [problem]


def test_noise_compare_and_thresholds_need_a_shadow(tmp_path: Path) -> None:
    """Settings that only judge shadows are refused on a route without one."""
    text = _route(
        "  - name: first\n    match: {operation: [lookup]}\n    backend: mainframe\n"
        "    deadline: 2s\n    noise: {backend: mainframe-2, sample: 5%}\n"
        "    thresholds: {min_samples: 5}\n"
    )
    assert _problems(tmp_path, text) == [
        "routes[0].noise: only used with shadow (noise is measured on shadowed lookups)",
        "routes[0].thresholds: only used with shadow",
    ]


def test_shadowing_section_problems_are_named(tmp_path: Path) -> None:
    """Bad bounds and retention in shadowing are reported by path, all at once."""
    text = _route("") + "shadowing: {max_in_flight: 0, retention: {max_age: soon}, shed_lag: 0s}\n"
    assert _problems(tmp_path, text) == [
        "shadowing.max_in_flight: must be greater than 0, got 0",
        "shadowing.retention.max_age: bad duration 'soon' (expected e.g. 500ms, 10s, 1m)",
        "shadowing.shed_lag: must be greater than 0, got '0s'",
    ]


def test_a_postgresql_store_is_kept_as_its_dsn(tmp_path: Path) -> None:
    """shadowing.store: a postgresql:// DSN is taken as written, not as a path beside the file."""
    dsn = "postgresql://gateway:s3cret@db.internal:5432/shadow?sslmode=require"
    config = load_routing(_write(tmp_path, _route("") + f"shadowing: {{store: '{dsn}'}}\n"))
    assert config.shadowing.store == dsn


def test_a_postgresql_store_without_psycopg_is_a_problem_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where psycopg is not installed (injected: None in sys.modules), a DSN is refused at load,
    naming the extra to install and the DSN without its password."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    text = _route("") + "shadowing: {store: 'postgresql://gateway:s3cret@db:5432/shadow'}\n"
    assert _problems(tmp_path, text) == [
        "shadowing.store: postgresql://gateway:***@db:5432/shadow is a PostgreSQL store, which "
        "needs psycopg: install 'cpr-gateway[postgres]'"
    ]


def _table(
    *shadows: Shadow, noise: Noise | None = None, target: str | Split = "mainframe"
) -> RouteTable:
    match = Match(frozenset({Operation.LOOKUP, Operation.SUBSCRIBE, Operation.LOGON}))
    route = Route("copied", match, target, 2.0, shadows, noise)
    return RouteTable([route, Route("rest", Match(), "mainframe", 5.0)])


def test_sampling_is_sticky_by_pnr_and_takes_its_share() -> None:
    """A 50% shadow copies the same PNRs every time, some but not all; 100% copies all."""
    half = _table(Shadow("persons-v2", BUCKETS // 2, 1.0))
    first = [bool(half.route(_lookup(pnr)).shadows) for pnr in PNRS]
    assert first == [bool(half.route(_lookup(pnr)).shadows) for pnr in PNRS]
    assert 0 < sum(first) < len(PNRS)
    every = _table(Shadow("persons-v2", BUCKETS, 1.0))
    assert all(every.route(_lookup(pnr)).shadows for pnr in PNRS)
    none = _table(Shadow("persons-v2", 0, 1.0))
    assert not any(none.route(_lookup(pnr)).shadows for pnr in PNRS)


def test_writes_are_copied_only_to_dual_write_shadows() -> None:
    """A subscribe reaches the dual_write shadow only; a lookup reaches both."""
    reads = Shadow("persons-v2", BUCKETS, 1.0)
    writes = Shadow("persons-v3", BUCKETS, 1.0, dual_write=True)
    table = _table(reads, writes)
    assert table.route(_lookup(PNRS[0], abon_type="1")).shadows == (writes,)
    assert table.route(_lookup(PNRS[0])).shadows == (reads, writes)


def test_logons_are_copied_but_password_changes_never() -> None:
    """The router's backstop: a change_password decision carries no shadows."""
    table = _table(Shadow("persons-v2", BUCKETS, 1.0))
    logon = LogonRequest("PRIV", "0001", "DEMO0001", "Demo#123")
    assert table.route(logon).shadows
    change = RouteTable([replace(table.routes[0], match=Match()), table.routes[1]])
    assert not change.route(replace(logon, new_password="Demo#124")).shadows


def test_a_shadow_is_left_out_when_the_split_already_sends_there() -> None:
    """In a canary, the PNRs on persons-v2 are not also shadowed to persons-v2."""
    split = Split(SplitKey.PNR, (("mainframe", BUCKETS // 2), ("persons-v2", BUCKETS // 2)))
    table = _table(Shadow("persons-v2", BUCKETS, 1.0), target=split)
    decisions = [table.route(_lookup(pnr)) for pnr in PNRS]
    assert {d.backend for d in decisions} == {"mainframe", "persons-v2"}
    assert all(bool(d.shadows) == (d.backend == "mainframe") for d in decisions)


def test_noise_goes_with_shadowed_lookups_answered_by_the_primary() -> None:
    """Noise copies: lookups only, a sticky share of them, never logons."""
    table = _table(Shadow("persons-v2", BUCKETS, 1.0), noise=Noise("mainframe-2", BUCKETS // 2))
    noisy = [table.route(_lookup(pnr)).noise is not None for pnr in PNRS]
    assert 0 < sum(noisy) < len(PNRS)
    logon = LogonRequest("PRIV", "0001", "DEMO0001", "Demo#123")
    assert table.route(logon).noise is None


def test_the_diff_shows_shadows_added_and_a_restart_for_shadowing(tmp_path: Path) -> None:
    """check-config --against names a new shadow per operation; shadowing needs a restart."""
    plain = load_routing(
        _write(
            tmp_path,
            _route(BASE.replace("    shadow: [{backend: persons-v2, sample: 100%}]\n", "")),
        )
    )
    shadowed = load_routing(_write(tmp_path, _route(BASE) + "shadowing: {max_in_flight: 2}\n"))
    assert diff_tables(plain.routes, shadowed.routes) == [
        "lookup: shadows none → persons-v2 100% within 2s"
    ]
    assert restart_needed(plain, shadowed) == ["shadowing"]


def test_the_documented_shadow_diff_line_is_what_the_code_prints(tmp_path: Path) -> None:
    """docs/routing.md: adding a 1s shadow to the canary example reads as documented."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "routing.md").read_text("utf-8")
    examples = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "version:" in b]
    outputs = re.findall(r"```text\n(.*?)```", doc, re.S)
    canary = load_routing(_write(tmp_path, examples[2]))
    pinned, lookups, rest = canary.routes
    shadowed = replace(lookups, shadows=(Shadow("persons-v2", BUCKETS, 1.0),))
    assert diff_tables(canary.routes, (pinned, shadowed, rest)) == outputs[2].splitlines()
