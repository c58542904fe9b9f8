"""The router: first match wins, customers compare leniently, the catch-all takes the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import LogonRequest, LookupRequest, Request
from gateway.config.schema import Match, Route
from gateway.model import Operation
from gateway.routing import Decision, RouteTable

PNR = "0101601234"  # synthetic


def _route(name: str, backend: str, match: Match | None = None, deadline: float = 1.0) -> Route:
    return Route(name, match or Match(), backend, deadline)


TABLE = RouteTable(
    [
        _route("vip", "persons-v2", Match(customers=frozenset({12})), deadline=2.0),
        _route("off4-lookups", "off4", Match(frozenset({Operation.LOOKUP}), frozenset({"OFF4"}))),
        _route(
            "writes", "mainframe", Match(frozenset({Operation.SUBSCRIBE, Operation.UNSUBSCRIBE}))
        ),
        _route("lookups", "persons-v2", Match(frozenset({Operation.LOOKUP}))),
        _route("rest", "mainframe", deadline=5.0),
    ]
)


def _lookup(customer: str = "0001", transaction: str = "PRIV", abon_type: str = "0") -> Request:
    return LookupRequest(transaction, customer, "Tk3nAbCd", "DEMO0001", PNR, abon_type=abon_type)


def _logon(customer: str = "0001", transaction: str = "PRIV") -> Request:
    return LogonRequest(transaction, customer, "DEMO0001", "Demo#123")


@pytest.mark.parametrize(
    ("request_", "route"),
    [
        (_lookup(customer="0012"), "vip"),  # earliest match wins over "off4-lookups" etc.
        (_logon(customer="0012"), "vip"),
        (_lookup(transaction="OFF4"), "off4-lookups"),
        (_lookup(transaction="OFF4", abon_type="1"), "writes"),
        (_lookup(abon_type="3"), "writes"),
        (_lookup(), "lookups"),
        (_logon(), "rest"),
        (LogonRequest("PRIV", "0001", "DEMO0001", "Demo#123", new_password="Neu#4567"), "rest"),
        (_lookup(transaction="ADRM", abon_type="7"), "lookups"),  # unknown ABON_TYPE: a lookup
    ],
)
def test_first_matching_route_wins(request_: Request, route: str) -> None:
    """Routes are tried in order and the first one that takes the request decides."""
    assert TABLE.route(request_).route == route


def test_decision_carries_backend_and_deadline() -> None:
    """The decision names the backend and the route's deadline."""
    assert TABLE.route(_lookup(customer="0012")) == Decision("vip", "persons-v2", 2.0)
    assert TABLE.route(_logon()) == Decision("rest", "mainframe", 5.0)


@pytest.mark.parametrize("customer", ["0012", "  12", "12  ", " 012", "12"])
def test_customer_number_matches_leniently(customer: str) -> None:
    """A space-padded customer number is the same customer as the zero-padded one."""
    assert TABLE.route(_logon(customer=customer)).route == "vip"


@pytest.mark.parametrize("customer", ["00A2", "    ", "", "１２"])
def test_unparseable_customer_falls_through_to_routes_without_customers(customer: str) -> None:
    """A customer number that is not a number matches no customer list, never crashes."""
    assert TABLE.route(_logon(customer=customer)).route == "rest"


def test_a_table_without_final_catch_all_is_refused() -> None:
    """The table can never leave a request without a decision."""
    with pytest.raises(ValueError, match="catch-all"):
        RouteTable([_route("lookups", "x", Match(frozenset({Operation.LOOKUP})))])


@given(
    st.text(min_size=4, max_size=4),
    st.text(max_size=4),
    st.sampled_from(["0", "1", "3", "9", "x"]),
)
def test_every_request_gets_a_decision(transaction: str, customer: str, abon_type: str) -> None:
    """Whatever a framed request holds, the router answers with one of its routes."""
    decision = TABLE.route(_lookup(customer, transaction, abon_type))
    assert decision.route in {"vip", "off4-lookups", "writes", "lookups", "rest"}
