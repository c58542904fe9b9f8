"""The PrometheusRule: promtool accepts it, its unit tests pass, it covers what an operator needs
alerting on, and it names only series the gateway exports (or Prometheus's own `up`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from deploy_tree import OVERLAYS, find, run, tool
from metric_names import PROMETHEUS_OWN, exported, used_in

_UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
#: What issue 16 asks the rules to catch, by alert name.
_REQUIRED = {
    "CprGatewayAnswering09",  # FEJLNR 09 rate
    "CprGatewayConfigRejected",  # reload failures
    "CprGatewayShadowDiffers",  # shadow verdict differs
    "CprGatewaySessionStoreFailing",  # session-store errors
    "CprGatewayEventLoopLag",
    "CprGatewayReplicaDown",
    "CprGatewayTooFewReplicas",
    "CprGatewayCanaryRolledBack",  # issue 17: a canary route rolled back
}


def _rules(overlay: str) -> list[dict[str, object]]:
    groups = find(overlay, "PrometheusRule", "cpr-gateway")["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _rule_file(overlay: str, directory: Path) -> Path:
    """The rule's groups as a Prometheus rule file, the form the operator hands Prometheus."""
    groups = find(overlay, "PrometheusRule", "cpr-gateway")["spec"]["groups"]
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_promtool_accepts_the_rules(overlay: str, tmp_path: Path) -> None:
    """Syntax, types, durations and templates, as Prometheus would load them."""
    out = run([tool("promtool"), "check", "rules", str(_rule_file(overlay, tmp_path))])
    assert f"SUCCESS: {len(_rules(overlay))} rules found" in out


def test_the_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    """`promtool test rules` on alerts_test.yaml: 09 share, a rejected reload, replicas down,
    the session store failing, each with its labels and rendered annotations."""
    _rule_file("prod", tmp_path)
    shutil.copy(_UNIT_TESTS, tmp_path / _UNIT_TESTS.name)
    out = run([tool("promtool"), "test", "rules", _UNIT_TESTS.name], cwd=tmp_path)
    assert "SUCCESS" in out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_alerts_an_operator_needs_are_there(overlay: str) -> None:
    """Each with a severity and a summary for the page."""
    alerts = {str(rule["alert"]): rule for rule in _rules(overlay)}
    assert set(alerts) >= _REQUIRED
    for name, rule in alerts.items():
        assert isinstance(rule["labels"], dict) and rule["labels"]["severity"], name
        assert isinstance(rule["annotations"], dict) and rule["annotations"]["summary"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_metric_in_the_rules_is_one_the_gateway_exports(overlay: str) -> None:
    """Read from the gateway's live registry; a renamed metric fails here, not silently in
    production."""
    known = exported() | PROMETHEUS_OWN
    for rule in _rules(overlay):
        names = used_in(str(rule["expr"]))
        assert names, f"{rule['alert']}: no metric found in its expression"
        assert names <= known, f"{rule['alert']}: {sorted(names - known)} not exported"
