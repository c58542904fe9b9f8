"""The Grafana dashboard: a ConfigMap Grafana's sidecar picks up, panels on what issue 16 asks
for, every query valid PromQL (promtool) naming only series the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from deploy_tree import find, run, tool
from metric_names import PROMETHEUS_OWN, exported, used_in

#: Grafana's own variables, replaced by something PromQL parses before promtool sees a query.
_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$namespace": ".*"}
#: Topics the dashboard must cover, by a metric each one's panels query.
_TOPICS = {
    "requests by operation/route/backend/FEJLNR": "cpr_gateway_requests_total",
    "latency": "cpr_gateway_request_duration_seconds_bucket",
    "shadow verdicts": "cpr_gateway_shadow_verdict",
    "top differing fields": "cpr_gateway_shadow_field_differences_total",
    "sessions": "cpr_gateway_session_events_total",
    "session store": "cpr_gateway_session_store_calls_total",
    "loop lag": "cpr_gateway_event_loop_lag_seconds",
}


def _dashboard() -> dict[str, Any]:
    configmap = find("prod", "ConfigMap", "cpr-gateway-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target and of the variables' label_values()."""
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert found, variable["definition"]
            queries.append((f"${variable['name']}", found.group(1)))
    return queries


def test_panels_cover_what_operators_watch() -> None:
    """Each topic has a panel; ids are unique and every panel is placed."""
    dashboard = _dashboard()
    used = set().union(*(used_in(expr) for _title, expr in _queries(dashboard)))
    assert {topic: metric in used for topic, metric in _TOPICS.items()} == dict.fromkeys(
        _TOPICS, True
    )
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all("gridPos" in panel for panel in dashboard["panels"])


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """Each query becomes a recording rule, and promtool parses the lot."""
    rules = []
    for index, (_title, query) in enumerate(_queries(_dashboard())):
        expr = query
        for variable, value in _VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run(
        [tool("promtool"), "check", "rules", str(path)]
    )


def test_every_metric_in_the_dashboard_is_one_the_gateway_exports() -> None:
    """Read from the gateway's live registry, like the alert rules' check."""
    known = exported() | PROMETHEUS_OWN
    for title, expr in _queries(_dashboard()):
        names = used_in(expr)
        assert names, f"{title}: no metric found in {expr}"
        assert names <= known, f"{title}: {sorted(names - known)} not exported"
