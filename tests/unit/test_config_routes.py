"""Route-list checks at load: names, the final catch-all, and routes that can never match."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import check_config, load_routing

HEAD = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
backends:
  mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}
  persons: {kind: legacy, address: "127.0.0.1:5002", tls: null}
routes:
"""
CATCH_ALL = "  - {name: rest, match: {}, backend: mainframe, deadline: 5s}\n"


def _route(name: str, match: str, backend: str = "persons") -> str:
    return f"  - {{name: {name}, match: {match}, backend: {backend}, deadline: 1s}}\n"


def _problems(tmp_path: Path, *routes: str) -> list[str]:
    path = tmp_path / "routing.yaml"
    path.write_text(HEAD + "".join(routes), encoding="utf-8")
    return check_config(path)


def test_specific_routes_before_the_catch_all_are_fine(tmp_path: Path) -> None:
    """Routes that each take something the earlier ones leave are all reachable."""
    assert (
        _problems(
            tmp_path,
            _route("one-customer", '{customer: ["0012"]}'),
            _route("lookups", "{operation: [lookup]}"),
            _route("off4-logons", "{operation: [logon], transaction: [OFF4]}"),
            _route("priv-logons", "{operation: [logon], transaction: [PRIV]}"),
            CATCH_ALL,
        )
        == []
    )


def test_missing_catch_all(tmp_path: Path) -> None:
    """The last route must take everything, so no request is ever without a route."""
    assert _problems(tmp_path, _route("lookups", "{operation: [lookup]}")) == [
        "routes: no catch-all route: the last route must have an empty match (match: {})"
    ]


def test_route_after_the_catch_all(tmp_path: Path) -> None:
    """A catch-all that is not last makes every later route dead."""
    assert _problems(tmp_path, CATCH_ALL, _route("lookups", "{operation: [lookup]}")) == [
        "routes[1]: comes after the catch-all routes[0] and can never match"
    ]


def test_route_covered_by_one_earlier_route(tmp_path: Path) -> None:
    """A route narrower than an earlier one is unreachable (overlap)."""
    problems = _problems(
        tmp_path,
        _route("lookups", "{operation: [lookup]}"),
        _route("priv-lookups", "{operation: [lookup], transaction: [PRIV]}"),
        CATCH_ALL,
    )
    assert problems == ["routes[1]: unreachable: routes[0] already match everything it matches"]


def test_route_covered_by_several_earlier_routes_together(tmp_path: Path) -> None:
    """Coverage is exact: two routes that together take all a third takes make it dead."""
    problems = _problems(
        tmp_path,
        _route("priv", "{transaction: [PRIV]}"),
        _route("off4", "{transaction: [OFF4]}"),
        _route("both", '{transaction: [PRIV, OFF4], customer: ["0001"]}'),
        CATCH_ALL,
    )
    assert problems == [
        "routes[2]: unreachable: routes[0], routes[1] already match everything it matches"
    ]


def test_partial_overlap_is_not_unreachable(tmp_path: Path) -> None:
    """A route that shares some requests with earlier ones but not all stays reachable."""
    assert (
        _problems(
            tmp_path,
            _route("priv", "{transaction: [PRIV]}"),
            _route("lookups", "{operation: [lookup]}"),
            CATCH_ALL,
        )
        == []
    )


def test_catch_all_made_dead_by_a_route_listing_every_operation(tmp_path: Path) -> None:
    """Listing every operation is a catch-all in disguise; the real one is then unreachable."""
    every = "{operation: [logon, change_password, lookup, subscribe, unsubscribe]}"
    assert _problems(tmp_path, _route("every", every), CATCH_ALL) == [
        "routes[1]: unreachable: routes[0] already match everything it matches"
    ]


def test_duplicate_route_names(tmp_path: Path) -> None:
    """Route names are metric labels, so two routes may not share one."""
    problems = _problems(
        tmp_path,
        _route("x", "{operation: [lookup]}"),
        _route("x", "{operation: [logon]}"),
        CATCH_ALL,
    )
    assert problems == ["routes[1].name: duplicate route name 'x' (see routes[0])"]


def test_lenient_customers_overlap_as_numbers(tmp_path: Path) -> None:
    """'  12' and '0012' are one customer, so a second route for it is unreachable."""
    problems = _problems(
        tmp_path,
        _route("a", '{customer: ["0012"]}'),
        _route("b", '{customer: ["  12"]}'),
        CATCH_ALL,
    )
    assert problems == ["routes[1]: unreachable: routes[0] already match everything it matches"]


@pytest.mark.parametrize("dimension", ["operation: [lookup]", "transaction: [PRIV]"])
def test_order_checks_wait_for_routes_to_parse(tmp_path: Path, dimension: str) -> None:
    """A route with its own problem is not also called unreachable or a missing catch-all."""
    problems = _problems(tmp_path, _route("a", f"{{{dimension}, customer: [1]}}"))
    assert problems == [
        'routes[0].match.customer[0]: expected a quoted customer number like "0012", got 1'
    ]


def test_loaded_routes_keep_their_order(tmp_path: Path) -> None:
    """First match wins, so the YAML order is the order of the loaded routes."""
    path = tmp_path / "routing.yaml"
    path.write_text(HEAD + _route("b", "{operation: [lookup]}") + CATCH_ALL, encoding="utf-8")
    assert [r.name for r in load_routing(path).routes] == ["b", "rest"]
