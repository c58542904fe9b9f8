"""routes[].canary, canary.store and admin.token_file: what loads, what is refused (by path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import check_config, diff_configs, load_routing
from gateway.config.canary import SPLIT_KEYS, CanaryPlan, Fallback, Gates, describe
from gateway.config.schema import SplitKey
from gateway.errors import ConfigError

HEAD = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
backends:
  mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}
  persons-v2: {kind: legacy, address: "127.0.0.1:5002", tls: null}
routes:
"""
LOOKUPS = """\
  - name: lookups
    match: {operation: [lookup]}
    backend: mainframe
    deadline: 2s
    shadow: [{backend: persons-v2, sample: 100%}]
    canary:
      candidate: persons-v2
      key: pnr
      steps: [0, 1, 5%, 25, 50, 100]
      min_duration: 10m
      min_requests: 500
      interval: 30s
      gates: {max_error_excess: 0.5%, max_p99_ratio: 1.5}
      safe_step: 0
"""
UNPLANNED = LOOKUPS[: LOOKUPS.index("    canary:")]
REST = """\
  - name: rest
    match: {}
    backend: mainframe
    deadline: 5s
"""


def _write(tmp_path: Path, text: str, name: str = "routing.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_agreed_spelling_loads_into_a_plan(tmp_path: Path) -> None:
    """Every key of the agreed routing.yaml spelling lands in CanaryPlan, percentages as such."""
    config = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST))
    assert config.routes[0].canary == CanaryPlan(
        candidate="persons-v2",
        key="pnr",
        steps=(0.0, 1.0, 5.0, 25.0, 50.0, 100.0),
        min_duration=600.0,
        min_requests=500,
        interval=30.0,
        gates=Gates(max_error_excess=0.005, max_p99_ratio=1.5),
        safe_step=0,
    )
    assert config.routes[1].canary is None


def test_a_plan_naming_only_its_candidate_takes_the_defaults(tmp_path: Path) -> None:
    """candidate is the one required key."""
    text = HEAD + UNPLANNED + "    canary: {candidate: persons-v2}\n" + REST
    assert load_routing(_write(tmp_path, text)).routes[0].canary == CanaryPlan("persons-v2")


def test_the_store_defaults_beside_routing_yaml_and_takes_a_path_or_a_dsn(tmp_path: Path) -> None:
    """canary.store: var/canary.sqlite beside the file by default; a path resolves there too."""
    config = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST))
    assert config.canary.store == tmp_path / "var" / "canary.sqlite"
    config = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST + "canary: {store: c.db}\n"))
    assert config.canary.store == tmp_path / "c.db"
    pytest.importorskip("psycopg")
    dsn = "postgresql://gw@db.internal/canary"
    config = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST + f"canary: {{store: '{dsn}'}}\n"))
    assert config.canary.store == dsn


def test_admin_token_file_resolves_beside_routing_yaml(tmp_path: Path) -> None:
    """admin.token_file is a file path; absent, there is none (the API then refuses everyone)."""
    assert load_routing(_write(tmp_path, HEAD + LOOKUPS + REST)).admin.token_file is None
    text = HEAD + LOOKUPS + REST + "admin: {port: 0, token_file: var/admin.token}\n"
    assert load_routing(_write(tmp_path, text)).admin.token_file == tmp_path / "var/admin.token"


def test_the_split_keys_are_the_routers() -> None:
    """config/canary cannot import schema (schema imports it): its key list must stay the same."""
    assert set(SPLIT_KEYS) == {key.value for key in SplitKey}


WRITES = """\
  - name: writes
    match: {operation: [subscribe, unsubscribe]}
    backend: mainframe
    deadline: 2s
    shadow: [{backend: persons-v2, sample: 100%, dual_write: true}]
    canary: {candidate: persons-v2, steps: [0, 100]}
"""


def test_a_write_route_switches_whole(tmp_path: Path) -> None:
    """A write route's plan is exactly [0, 100], with every write copied to the candidate."""
    config = load_routing(_write(tmp_path, HEAD + WRITES + REST))
    plan = config.routes[0].canary
    assert plan is not None and plan.steps == (0.0, 100.0)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "candidate: persons-v2\n",
            "candidate: persons-v9\n",
            "routes[0].canary.candidate: unknown backend 'persons-v9'",
        ),
        (
            "candidate: persons-v2\n",
            "candidate: mainframe\n",
            "routes[0].canary.candidate: 'mainframe' is the route's own backend (its primary); "
            "name the new one",
        ),
        (
            "key: pnr",
            "key: user",
            "routes[0].canary.key: expected pnr or customer, got 'user'",
        ),
        (
            "[0, 1, 5%, 25, 50, 100]",
            "[0, 5, 1, 100]",
            "routes[0].canary.steps: steps must increase strictly, got [0, 5, 1, 100]",
        ),
        (
            "[0, 1, 5%, 25, 50, 100]",
            "[0, 5, 5, 100]",
            "routes[0].canary.steps: steps must increase strictly, got [0, 5, 5, 100]",
        ),
        (
            "[0, 1, 5%, 25, 50, 100]",
            "[0, 50, 101]",
            "routes[0].canary.steps: expected a percentage from 0 to 100, got 101",
        ),
        (
            "[0, 1, 5%, 25, 50, 100]",
            "[0, 50]",
            "routes[0].canary.steps: the last step must be 100, got [0, 50]",
        ),
        (
            "[0, 1, 5%, 25, 50, 100]",
            "[100]",
            "routes[0].canary.steps: expected a list of at least two percentages ending at 100, "
            "got [100]",
        ),
        (
            "min_duration: 10m",
            "min_duration: 0s",
            "routes[0].canary.min_duration: must be greater than 0, got '0s'",
        ),
        (
            "interval: 30s",
            "interval: 30",
            "routes[0].canary.interval: bad duration 30 (expected e.g. 500ms, 10s, 1m)",
        ),
        (
            "min_requests: 500",
            "min_requests: 0",
            "routes[0].canary.min_requests: must be greater than 0, got 0",
        ),
        (
            "max_error_excess: 0.5%",
            "max_error_excess: half",
            "routes[0].canary.gates.max_error_excess: expected a percentage like 20% or 100%, "
            "got 'half'",
        ),
        (
            "max_p99_ratio: 1.5",
            "max_p99_ratio: 0.5",
            "routes[0].canary.gates.max_p99_ratio: expected a ratio of 1 or more, e.g. 1.5, "
            "got 0.5",
        ),
        (
            "safe_step: 0",
            "safe_step: 5",
            "routes[0].canary.safe_step: expected a step below the last, 0 to 4, got 5",
        ),
        (
            "safe_step: 0",
            "safe_stop: 0",
            "routes[0].canary.safe_stop: unknown key (expected candidate, key, steps, "
            "min_duration, min_requests, interval, gates, safe_step, fallback)",
        ),
        (
            "    shadow: [{backend: persons-v2, sample: 100%}]\n",
            "",
            "routes[0].canary.candidate: a canary of lookups is judged on the shadow's verdict: "
            "add shadow: [{backend: persons-v2}] to the route",
        ),
        (
            "    backend: mainframe\n",
            "    split: {key: pnr, backends: {mainframe: 100}}\n",
            "routes[0].canary: a canary route names one backend, its primary, not a split",
        ),
        (
            "operation: [lookup]",
            "operation: [lookup, logon]",
            "routes[0].canary.steps: route matches logon, which never split: steps must be "
            "exactly [0, 100], got [0, 1, 5, 25, 50, 100]",
        ),
    ],
)
def test_a_bad_plan_is_named_by_its_path(tmp_path: Path, old: str, new: str, problem: str) -> None:
    """Each problem of a plan is reported at its YAML path, with the offending value."""
    assert old in LOOKUPS
    assert check_config(_write(tmp_path, HEAD + LOOKUPS.replace(old, new) + REST)) == [problem]


def test_a_write_route_with_ramp_steps_is_refused(tmp_path: Path) -> None:
    """Writes never split: subscribe/unsubscribe steps other than [0, 100] are refused."""
    text = HEAD + WRITES.replace("[0, 100]", "[0, 50, 100]") + REST
    assert check_config(_write(tmp_path, text)) == [
        "routes[0].canary.steps: route matches subscribe, unsubscribe, which never split: "
        "steps must be exactly [0, 100], got [0, 50, 100]"
    ]


def test_a_catch_all_canary_is_refused_for_password_changes(tmp_path: Path) -> None:
    """A catch-all can match change_password, which a canary never switches: a password
    changed on one side only would lock the client out of the other after a rollback."""
    whole = REST + "    canary: {candidate: persons-v2, steps: [0, 100]}\n"
    problems = check_config(_write(tmp_path, HEAD + whole))
    assert problems[0].startswith("routes[0].canary: route matches change_password, which a ")


def test_a_write_canary_needs_a_dual_write_copy_to_the_candidate(tmp_path: Path) -> None:
    """Every write on both sides, so that a rollback loses none (docs/canary.md, "Writes")."""
    text = HEAD + WRITES.replace(", dual_write: true", "") + REST
    assert check_config(_write(tmp_path, text)) == [
        "routes[0].canary.candidate: route matches subscribe, unsubscribe: a canary of writes"
        " needs every write on both sides, so that a rollback loses none: add shadow:"
        " [{backend: persons-v2, dual_write: true}] to the route"
    ]


def test_bad_top_level_sections_are_named(tmp_path: Path) -> None:
    """canary.store and admin.token_file problems carry their paths."""
    text = HEAD + LOOKUPS + REST + "canary: {store: 7, stoer: x}\nadmin: {token_file: ''}\n"
    assert check_config(_write(tmp_path, text)) == [
        "admin.token_file: expected a non-empty string, got ''",
        "canary.store: expected a non-empty string, got 7",
        "canary.stoer: unknown key (expected store)",
    ]


def test_a_changed_plan_is_a_change_line(tmp_path: Path) -> None:
    """check-config --against names a plan added, changed or removed, in one line each."""
    before = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST, "old.yaml"))
    after = load_routing(
        _write(tmp_path, HEAD + LOOKUPS.replace("min_requests: 500", "min_requests: 900") + REST)
    )
    plan = after.routes[0].canary
    assert plan is not None
    assert diff_configs(before, after) == ["route lookups: canary min_requests 500 → 900"]
    bare = load_routing(_write(tmp_path, HEAD + UNPLANNED + REST, "b.yaml"))
    assert diff_configs(bare, after) == [f"route lookups: canary added: {describe(plan)}"]
    assert diff_configs(after, bare) == ["route lookups: canary removed"]
    assert diff_configs(after, after) == []


def test_a_new_store_takes_a_restart(tmp_path: Path) -> None:
    """canary.store is opened at start: check-config --against says a restart applies it."""
    before = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST, "old.yaml"))
    after = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST + "canary: {store: c.db}\n"))
    assert diff_configs(before, after) == ["canary: changed (takes effect on restart)"]


def test_the_read_fallback_budget_is_read_and_zero_turns_it_off(tmp_path: Path) -> None:
    """``canary.fallback.retry_budget``: 10% unless said; ``0%`` is off; a bad value is named."""
    plan = load_routing(_write(tmp_path, HEAD + LOOKUPS + REST)).routes[0].canary
    assert plan is not None and plan.fallback == Fallback(retry_budget=0.10)
    off = LOOKUPS + "      fallback: {retry_budget: 0%}\n"
    plan = load_routing(_write(tmp_path, HEAD + off + REST)).routes[0].canary
    assert plan is not None and plan.fallback == Fallback(retry_budget=0.0)
    assert "a failed read is not asked of the primary" in describe(plan)
    bad = LOOKUPS + "      fallback: {retry_budget: lots}\n"
    with pytest.raises(ConfigError) as raised:
        load_routing(_write(tmp_path, HEAD + bad + REST))
    assert raised.value.problems == [
        "routes[0].canary.fallback.retry_budget: expected a percentage like 20% or 100%, got 'lots'"
    ]


def test_describe_says_the_plan_in_one_line() -> None:
    """The line check-config prints for a plan."""
    assert describe(CanaryPlan("persons-v2")) == (
        "persons-v2 by pnr, steps 0/1/5/25/50/100%, each at least 10m and 500 requests, "
        "judged every 30s; gates: verdict clean, failures at most 0.5 points above the "
        "primary's, p99 at most 1.5x; a failed gate rolls back to step 0 (0%); a failed read "
        "is asked of the primary, up to 10% of the candidate's reads"
    )


def test_docs_canary_example_loads_with_the_documented_line(tmp_path: Path) -> None:
    """docs/canary.md stays true: its routing.yaml loads, its plan is the defaults, and the
    check-config line it shows is what describe() prints."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "canary.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = load_routing(_write(tmp_path, example))
    plan = config.routes[0].canary
    assert plan == CanaryPlan("persons-v2")
    line = doc.split("```text\n", 1)[1].split("```", 1)[0].strip()
    assert line == f"canary lookups: mainframe → {describe(plan)}"
    assert config.admin.token_file == tmp_path / "var" / "admin.token"
