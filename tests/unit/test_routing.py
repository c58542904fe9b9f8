"""The router: first match wins, lenient customers and users, sticky weighted splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import LogonRequest, LookupRequest, Request
from gateway.config.schema import Match, Route, Split, SplitKey
from gateway.model import Operation
from gateway.routing import Decision, RouteTable, bucket, split_key

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


def test_decision_reserves_shadows_but_has_none() -> None:
    """Shadows come later: today every decision names one backend and no copies."""
    assert TABLE.route(_lookup()).shadows == ()


USERS = RouteTable(
    [
        _route("demo-user", "persons-v2", Match(users=frozenset({"DEMO01"}))),
        _route("rest", "mainframe"),
    ]
)


@pytest.mark.parametrize(("user", "route"), [("DEMO01", "demo-user"), ("DEMO01  ", "demo-user")])
def test_user_id_matches_right_trimmed(user: str, route: str) -> None:
    """A space-padded BRUGER-ID is the same user as the unpadded one."""
    assert USERS.route(LogonRequest("PRIV", "0001", user, "Demo#123")).route == route


@pytest.mark.parametrize("user", ["  DEMO01", "DEMO0", "demo01", "DEMO011"])
def test_other_user_ids_do_not_match(user: str) -> None:
    """Only trailing spaces are forgiven: leading spaces, case and length still count."""
    assert USERS.route(LogonRequest("PRIV", "0001", user, "Demo#123")).route == "rest"


def _canary(percent: int, key: SplitKey = SplitKey.PNR) -> RouteTable:
    """Lookups split mainframe/persons-v2 with ``percent`` on the new side (listed last)."""
    shares = (("mainframe", (100 - percent) * 100), ("persons-v2", percent * 100))
    lookups = Match(frozenset({Operation.LOOKUP}))
    return RouteTable(
        [Route("canary", lookups, Split(key, shares), 2.0), _route("rest", "mainframe")]
    )


#: 10,000 distinct synthetic PNRs.
SYNTHETIC = [f"{i % 28 + 1:02d}{i // 28 % 12 + 1:02d}{i % 97:02d}{i:04d}" for i in range(10_000)]


def _side(table: RouteTable, pnr: str) -> str:
    return table.route(LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", pnr)).backend


def _on_new_side(table: RouteTable) -> set[str]:
    return {pnr for pnr in SYNTHETIC if _side(table, pnr) == "persons-v2"}


def test_synthetic_pnrs_are_distinct() -> None:
    """The sample is really 10,000 different keys."""
    assert len(set(SYNTHETIC)) == 10_000


@pytest.mark.parametrize("percent", [5, 10, 50])
def test_a_split_sends_its_share_within_one_percent(percent: int) -> None:
    """A 10% split puts 10% ± 1% of 10,000 keys on the new side (and 5%, 50% alike)."""
    assert abs(len(_on_new_side(_canary(percent))) - percent * 100) <= 100


def test_a_split_is_sticky_across_calls() -> None:
    """Every key gets the same side every time it is routed."""
    table = _canary(10)
    first = [_side(table, pnr) for pnr in SYNTHETIC]
    assert [_side(table, pnr) for pnr in SYNTHETIC] == first
    assert [_side(_canary(10), pnr) for pnr in SYNTHETIC] == first  # a rebuilt table too


def test_raising_the_new_share_only_moves_keys_to_the_new_side() -> None:
    """Every key on the new side at 5% is still there at 10%; old-side keys at 10% were at 5%."""
    at_5, at_10 = _on_new_side(_canary(5)), _on_new_side(_canary(10))
    assert at_5 <= at_10
    old_at_10 = set(SYNTHETIC) - at_10
    assert old_at_10 <= set(SYNTHETIC) - at_5
    assert len(at_10) > len(at_5)  # and the raise did move some


def test_zero_and_hundred_percent_are_absolute() -> None:
    """0% sends nothing to the new side, 100% everything."""
    assert _on_new_side(_canary(0)) == set()
    assert _on_new_side(_canary(100)) == set(SYNTHETIC)


def test_the_last_listed_backend_holds_the_lowest_buckets() -> None:
    """Bucket ranges are laid out from the last listed backend up (the documented rule)."""
    split = Split(SplitKey.PNR, (("mainframe", 9000), ("mirror", 500), ("persons-v2", 500)))
    assert split.ranges() == (
        ("persons-v2", 0, 500),
        ("mirror", 500, 1000),
        ("mainframe", 1000, 10_000),
    )


def test_buckets_never_change_between_releases() -> None:
    """The hash is pinned: a key's bucket is part of the canary's contract with its users."""
    assert (bucket("0101601234"), bucket("customer:12")) == (4708, 9381)
    assert all(0 <= bucket(pnr) < 10_000 for pnr in SYNTHETIC[:100])


def test_a_logon_in_a_pnr_split_is_hashed_by_customer() -> None:
    """A request without a PNR falls back to its customer number, padded or not."""
    assert split_key(_logon(customer="  12"), SplitKey.PNR) == "customer:12"
    assert split_key(_logon(customer="0012"), SplitKey.PNR) == "customer:12"
    assert split_key(_logon(customer="00A2"), SplitKey.PNR) == "customer:00A2"
    assert split_key(_lookup(), SplitKey.PNR) == PNR
    assert split_key(_lookup(), SplitKey.CUSTOMER) == "customer:1"


def test_a_customer_split_keeps_a_customer_on_one_side() -> None:
    """With key customer, all PNRs a customer looks up go to the same side."""
    table = _canary(50, SplitKey.CUSTOMER)
    for customer in ("0001", "0002", "0003", "0012"):
        sides = {
            table.route(LookupRequest("PRIV", customer, "Tk3nAbCd", "DEMO0001", pnr)).backend
            for pnr in SYNTHETIC[:50]
        }
        assert len(sides) == 1


def test_a_split_write_goes_to_exactly_one_side_and_stays_there() -> None:
    """Subscribe and unsubscribe of one PNR reach the same single backend, no copies."""
    writes = Match(frozenset({Operation.SUBSCRIBE, Operation.UNSUBSCRIBE}))
    split = Split(SplitKey.PNR, (("mainframe", 5000), ("persons-v2", 5000)))
    table = RouteTable([Route("writes", writes, split, 1.0), _route("rest", "mainframe")])
    for pnr in SYNTHETIC[:200]:
        sub = table.route(LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", pnr, "1"))
        unsub = table.route(LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", pnr, "3"))
        assert sub.backend == unsub.backend
        assert sub.shadows == unsub.shadows == ()
