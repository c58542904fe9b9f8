"""Split routes and user matches at load: weights, keys, backend names, one target per route."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Split, SplitKey, check_config, load_routing
from gateway.model import Operation

HEAD = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
backends:
  mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}
  persons-v2: {kind: legacy, address: "127.0.0.1:5002", tls: null}
routes:
"""
CATCH_ALL = "  - {name: rest, match: {}, backend: mainframe, deadline: 5s}\n"


def _write(tmp_path: Path, route: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(HEAD + route + CATCH_ALL, encoding="utf-8")
    return path


def _split(body: str) -> str:
    return f"  - {{name: canary, match: {{operation: [lookup]}}, split: {body}, deadline: 2s}}\n"


def test_a_split_loads_in_yaml_order_as_buckets(tmp_path: Path) -> None:
    """Percentages become buckets out of 10,000, in the order the file lists them."""
    text = _split("{key: pnr, backends: {mainframe: 95, persons-v2: 5}}")
    route = load_routing(_write(tmp_path, text)).routes[0]
    assert route.target == Split(SplitKey.PNR, (("mainframe", 9500), ("persons-v2", 500)))
    assert route.backends == ("mainframe", "persons-v2")
    assert route.match.operations == frozenset({Operation.LOOKUP})


def test_the_documented_block_form_loads(tmp_path: Path) -> None:
    """The multi-line form of docs/routing.md, with fractional percentages and a 0% side."""
    text = """\
  - name: lookups-canary
    match: {operation: [lookup]}
    split:
      key: customer
      backends: {mainframe: 99.5, persons-v2: 0.5}
    deadline: 2s
  - name: writes
    match: {operation: [subscribe, unsubscribe]}
    split:
      key: pnr
      backends: {mainframe: 100, persons-v2: 0}
    deadline: 2s
"""
    canary, writes, _rest = load_routing(_write(tmp_path, text)).routes
    assert canary.target == Split(SplitKey.CUSTOMER, (("mainframe", 9950), ("persons-v2", 50)))
    assert writes.target == Split(SplitKey.PNR, (("mainframe", 10_000), ("persons-v2", 0)))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "{key: pnr, backends: {mainframe: 90, persons-v2: 5}}",
            "routes[0].split.backends: percentages add up to 95, not 100",
        ),
        (
            "{key: pnr, backends: {mainframe: 95, persons-v3: 5}}",
            "routes[0].split.backends.persons-v3: unknown backend 'persons-v3'",
        ),
        (
            "{key: user, backends: {mainframe: 100}}",
            "routes[0].split.key: unknown split key 'user' (known: pnr, customer)",
        ),
        ("{backends: {mainframe: 100}}", "routes[0].split.key: required"),
        (
            "{key: pnr, backends: {mainframe: 95%, persons-v2: 5}}",
            "routes[0].split.backends.mainframe: expected a percentage from 0 to 100, got '95%'",
        ),
        (
            "{key: pnr, backends: {mainframe: 101, persons-v2: 0}}",
            "routes[0].split.backends.mainframe: expected a percentage from 0 to 100, got 101",
        ),
        (
            "{key: pnr, backends: {mainframe: 100, persons-v2: -1}}",
            "routes[0].split.backends.persons-v2: expected a percentage from 0 to 100, got -1",
        ),
        (
            "{key: pnr, backends: {mainframe: 99.995, persons-v2: 5}}",
            "routes[0].split.backends.mainframe: a percentage has at most two decimals, got 99.995",
        ),
        (
            "{key: pnr, backends: {mainframe: true}}",
            "routes[0].split.backends.mainframe: expected a percentage from 0 to 100, got True",
        ),
        (
            "{key: pnr, backends: []}",
            "routes[0].split.backends: expected a mapping of backend names to percentages, got []",
        ),
        (
            "{key: pnr, backends: {mainframe: 100}, shadow: persons-v2}",
            "routes[0].split.shadow: unknown key (expected key, backends)",
        ),
    ],
)
def test_split_problems(tmp_path: Path, body: str, problem: str) -> None:
    """Weights must add up to 100, names must be backends, the key must be pnr or customer."""
    assert check_config(_write(tmp_path, _split(body))) == [problem]


def test_every_bad_weight_is_named(tmp_path: Path) -> None:
    """Two bad entries give two problems, each at its own path; the sum waits for them."""
    body = "{key: pnr, backends: {mainframe: x, persons-v9: 5}}"
    assert check_config(_write(tmp_path, _split(body))) == [
        "routes[0].split.backends.mainframe: expected a percentage from 0 to 100, got 'x'",
        "routes[0].split.backends.persons-v9: unknown backend 'persons-v9'",
    ]


def test_a_route_takes_a_backend_or_a_split_not_both(tmp_path: Path) -> None:
    """One target per route: both is refused at the route's path."""
    text = (
        "  - {name: canary, match: {operation: [lookup]}, backend: mainframe,"
        " split: {key: pnr, backends: {mainframe: 100}}, deadline: 2s}\n"
    )
    assert check_config(_write(tmp_path, text)) == ["routes[0]: give backend or split, not both"]


def test_a_split_route_is_checked_for_overlap_like_any_other(tmp_path: Path) -> None:
    """A split route covered by an earlier route is unreachable, as with backend routes."""
    text = "  - {name: lookups, match: {operation: [lookup]}, backend: persons-v2, deadline: 1s}\n"
    text += _split("{key: pnr, backends: {mainframe: 95, persons-v2: 5}}")
    assert check_config(_write(tmp_path, text)) == [
        "routes[1]: unreachable: routes[0] already match everything it matches"
    ]


def test_user_ids_load_right_trimmed(tmp_path: Path) -> None:
    """A padded user id in the file is the same user as the unpadded one."""
    text = '  - {name: u, match: {user: ["DEMO01  ", X]}, backend: persons-v2, deadline: 1s}\n'
    assert load_routing(_write(tmp_path, text)).routes[0].match.users == frozenset({"DEMO01", "X"})


def test_a_route_for_a_user_is_reachable_after_one_for_another(tmp_path: Path) -> None:
    """Users are a match dimension of their own in the overlap check."""
    one = '  - {name: a, match: {user: ["DEMO01"]}, backend: persons-v2, deadline: 1s}\n'
    two = '  - {name: b, match: {user: ["DEMO02"]}, backend: persons-v2, deadline: 1s}\n'
    same = '  - {name: c, match: {user: ["DEMO01  "]}, backend: persons-v2, deadline: 1s}\n'
    assert check_config(_write(tmp_path, one + two)) == []
    assert check_config(_write(tmp_path, one + same)) == [
        "routes[1]: unreachable: routes[0] already match everything it matches"
    ]
