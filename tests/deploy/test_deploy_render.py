"""Each overlay renders offline, and every object it renders is one the API server would take:
the built-in kinds against the upstream schemas (kubernetes-validate, strict: unknown fields
fail), the Prometheus Operator's kinds by the fields their CRDs require and what they point at.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from deploy_tree import OVERLAYS, Manifest, find, kubernetes_version, rendered

#: Custom resources: not in the upstream schemas, checked by the tests below.
_OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
_OPERATOR_API = "monitoring.coreos.com/v1"


def _name(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_stack(overlay: str) -> None:
    """The gateway with its Service, budget, autoscaler and policy, the services, monitoring."""
    kinds = {(obj["kind"], obj["metadata"]["name"].split("-")[0]) for obj in rendered(overlay)}
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert (kind, "cpr") in kinds, f"{overlay}: no {kind}"
    for kind in ("NetworkPolicy", "ConfigMap", "ServiceMonitor", "PrometheusRule"):
        assert (kind, "cpr") in kinds, f"{overlay}: no {kind}"
    find(overlay, "Deployment", "cpr-gateway")
    find(overlay, "Deployment", "cpr-services")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_built_in_object_matches_the_kubernetes_schema(overlay: str) -> None:
    """Validated for the kubectl client's version; a kind the schemas lack fails too."""
    version = kubernetes_version()
    problems: list[str] = []
    for obj in rendered(overlay):
        if obj["kind"] in _OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            problems.append(f"{_name(obj)}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{_name(obj)}: {exc.message}")
    assert problems == []


def _mapping(value: Any, where: str) -> dict[str, Any]:
    assert isinstance(value, dict), f"{where}: expected a mapping"
    return value


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_monitor_scrapes_the_admin_port(overlay: str) -> None:
    """spec.selector and spec.endpoints[].port (required by the CRD) name a rendered Service's
    port, and the job label it sets is the one the rules and dashboard select."""
    monitor = find(overlay, "ServiceMonitor", "cpr-gateway")
    assert monitor["apiVersion"] == _OPERATOR_API
    spec = _mapping(monitor["spec"], "spec")
    wanted = _mapping(spec["selector"]["matchLabels"], "spec.selector.matchLabels")
    services = [
        obj
        for obj in rendered(overlay)
        if obj["kind"] == "Service" and wanted.items() <= obj["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["cpr-gateway-admin"]
    ports = {port["name"]: port["port"] for port in services[0]["spec"]["ports"]}
    assert [endpoint["port"] for endpoint in spec["endpoints"]] == ["admin"]
    assert ports["admin"] == 9100
    assert services[0]["metadata"]["labels"][spec["jobLabel"]] == "cpr-gateway"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prometheus_rule_has_the_fields_its_crd_requires(overlay: str) -> None:
    """spec.groups[].name and rules; each rule an alert or a record, with an expr
    (the expressions themselves go through promtool in test_deploy_alerts)."""
    rule = find(overlay, "PrometheusRule", "cpr-gateway")
    assert rule["apiVersion"] == _OPERATOR_API
    groups = rule["spec"]["groups"]
    assert groups, "no rule groups"
    for group in groups:
        assert isinstance(group["name"], str)
        for entry in group["rules"]:
            assert ("alert" in entry) != ("record" in entry), entry
            assert isinstance(entry["expr"], str)
            assert set(entry) <= {"alert", "record", "expr", "for", "labels", "annotations"}
