"""A canary route at its step routes like a sticky split: promotions only move keys onto the
candidate, rollbacks only move them off."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.canary.model import CanaryState, Status
from gateway.canary.weights import effective_route, effective_routes, weights_of
from gateway.codec import LookupRequest
from gateway.comparison import Shadow
from gateway.config.canary import CanaryPlan
from gateway.config.schema import BUCKETS, Match, Route, Split, SplitKey
from gateway.model import Operation
from gateway.routing import RouteTable

STEPS = (0.0, 0.5, 1.0, 5.0, 25.0, 50.0, 100.0)
PLAN = CanaryPlan("persons-v2", steps=STEPS)
LOOKUPS = Route(
    "lookups",
    Match(operations=frozenset({Operation.LOOKUP})),
    "mainframe",
    2.0,
    shadows=(Shadow("persons-v2", BUCKETS, 1.0),),
    canary=PLAN,
)
REST = Route("rest", Match(), "mainframe", 5.0)
# Synthetic 10-digit keys; the split hashes the text, a birth date is not needed here.
PNRS = st.from_regex(r"[0-9]{10}", fullmatch=True)


def _state(step: int) -> CanaryState:
    return CanaryState("lookups", step, Status.RUNNING, "", 0.0)


def _side(pnr: str, step: int) -> str:
    table = RouteTable(effective_routes((LOOKUPS, REST), {"lookups": _state(step)}))
    return table.route(LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", pnr)).backend


def test_a_canary_route_becomes_a_split_with_the_candidate_last() -> None:
    """At 5% the route is Split(pnr, mainframe 95%, persons-v2 5%); shadows and plan kept."""
    route = effective_route(LOOKUPS, _state(3))
    assert route.target == Split(SplitKey.PNR, (("mainframe", 9500), ("persons-v2", 500)))
    assert route.shadows == LOOKUPS.shadows and route.canary == PLAN
    assert route.primary == "mainframe"


def test_a_route_without_a_state_is_at_step_zero_and_others_are_untouched() -> None:
    """No state yet: 0% (shadow only); routes without a plan come back as they are."""
    lookups, rest = effective_routes((LOOKUPS, REST), {})
    assert lookups.target == Split(SplitKey.PNR, (("mainframe", BUCKETS), ("persons-v2", 0)))
    assert rest is REST


def test_the_ends_send_everything_to_one_side() -> None:
    """0% answers every key from the primary, 100% from the candidate (empty ranges unused)."""
    keys = [f"{n:010d}" for n in range(0, 10_000_000_000, 99_999_989)]
    assert {_side(pnr, 0) for pnr in keys} == {"mainframe"}
    assert {_side(pnr, len(STEPS) - 1) for pnr in keys} == {"persons-v2"}


def test_weights_of_gives_percent_per_backend() -> None:
    """The dashboard's and metric's figures: primary and candidate percent at the step."""
    assert weights_of(LOOKUPS, _state(1)) == {"mainframe": 99.5, "persons-v2": 0.5}
    assert weights_of(LOOKUPS, None) == {"mainframe": 100.0, "persons-v2": 0.0}
    assert weights_of(REST, None) == {"mainframe": 100.0}


def test_a_step_the_plan_does_not_have_is_the_safe_step() -> None:
    """A state beyond a shortened plan never sends more to the candidate than the safe step."""
    assert weights_of(LOOKUPS, _state(len(STEPS))) == {"mainframe": 100.0, "persons-v2": 0.0}


@given(pnr=PNRS, step=st.integers(min_value=0, max_value=len(STEPS) - 1))
def test_a_key_on_the_candidate_stays_there_at_every_later_step(pnr: str, step: int) -> None:
    """Promotion only moves keys onto the candidate."""
    if _side(pnr, step) == "persons-v2":
        assert {_side(pnr, later) for later in range(step, len(STEPS))} == {"persons-v2"}


@given(pnr=PNRS, step=st.integers(min_value=0, max_value=len(STEPS) - 1))
def test_a_key_off_the_candidate_stays_off_at_every_earlier_step(pnr: str, step: int) -> None:
    """Rollback only moves keys off the candidate."""
    if _side(pnr, step) == "mainframe":
        assert {_side(pnr, earlier) for earlier in range(step + 1)} == {"mainframe"}


@given(pnr=PNRS)
def test_every_key_crosses_exactly_once(pnr: str) -> None:
    """Along the plan a key's side changes at most once, from primary to candidate."""
    sides = [_side(pnr, step) for step in range(len(STEPS))]
    assert sides == sorted(sides, key=lambda side: side == "persons-v2")
    assert sides[0] == "mainframe" and sides[-1] == "persons-v2"


def test_a_write_route_at_100_percent_copies_every_write_to_the_old_primary() -> None:
    """docs/canary.md, "Writes": a write switches whole, and while the candidate answers the
    writes, a dual-write copy of each still reaches the primary, so a rollback loses none."""
    plan = CanaryPlan("persons-v2", key="pnr", steps=(0.0, 100.0))
    writes = Route(
        "subscriptions",
        Match(operations=frozenset({Operation.SUBSCRIBE, Operation.UNSUBSCRIBE})),
        "mainframe",
        2.0,
        shadows=(Shadow("persons-v2", BUCKETS, 1.0, dual_write=True),),
        canary=plan,
    )
    before = effective_route(writes, CanaryState("subscriptions", 0, Status.RUNNING, "", 0.0))
    after = effective_route(writes, CanaryState("subscriptions", 1, Status.COMPLETED, "", 0.0))
    assert [(s.backend, s.dual_write) for s in before.shadows] == [("persons-v2", True)]
    assert [(s.backend, s.dual_write) for s in after.shadows] == [("mainframe", True)]
    assert isinstance(after.target, Split) and after.target.shares == (
        ("mainframe", 0),
        ("persons-v2", BUCKETS),
    )
    # A read route's copies turn too: the evidence goes on once the candidate answers all.
    read = effective_route(LOOKUPS, _state(len(STEPS) - 1))
    assert [s.backend for s in read.shadows] == ["mainframe"]
    below = effective_route(LOOKUPS, _state(len(STEPS) - 2))
    assert [s.backend for s in below.shadows] == ["persons-v2"]
