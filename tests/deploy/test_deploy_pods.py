"""What every pod the overlays render promises: non-root, a read-only root filesystem, no
privileges to gain, resources, Secrets mounted 0400, and configuration mounted so that an update
reaches the running process; and the gateway's own lifecycle (probes, drain, autoscaling)."""

from __future__ import annotations

import pytest
import yaml
from deploy_tree import (
    OVERLAYS,
    Manifest,
    container,
    containers,
    find,
    pod_specs,
    routing_yaml,
    volumes,
)

from gateway.config.reader import duration

#: 0400: the owner reads, nobody else (fsGroup then adds group read, see the Deployment).
SECRET_MODE = 0o400
ADMIN_PORT = 9100


def _every_container(overlay: str) -> list[tuple[str, Manifest, Manifest]]:
    return [
        (f"{where}:{c['name']}", pod, c)
        for where, pod in pod_specs(overlay)
        for c in containers(pod)
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_as_non_root_on_a_read_only_root(overlay: str) -> None:
    """The restricted Pod Security profile, container by container (pod-level where it may be)."""
    for where, pod, c in _every_container(overlay):
        pod_context, context = pod.get("securityContext", {}), c.get("securityContext", {})
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, where
        assert context.get("runAsUser", pod_context.get("runAsUser", 0)) != 0, where
        assert context.get("readOnlyRootFilesystem") is True, where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("capabilities", {}).get("drop") == ["ALL"], where
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    """CPU and memory, requested and limited, init containers included."""
    for where, _pod, c in _every_container(overlay):
        resources = c.get("resources", {})
        for bound in ("requests", "limits"):
            assert set(resources.get(bound, {})) >= {"cpu", "memory"}, f"{where}: {bound}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_mounted_0400(overlay: str) -> None:
    """defaultMode and any per-key mode; there is at least one Secret volume to check."""
    modes = [
        (f"{where}:{name}", volume["secret"])
        for where, pod in pod_specs(overlay)
        for name, volume in volumes(pod).items()
        if "secret" in volume
    ]
    assert modes
    for where, secret in modes:
        assert secret.get("defaultMode") == SECRET_MODE, where
        for item in secret.get("items", []):
            assert item.get("mode", SECRET_MODE) & ~SECRET_MODE == 0, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_configmap_or_secret_is_mounted_with_sub_path(overlay: str) -> None:
    """A subPath mount is a copy the kubelet never updates: routing.yaml edits would not arrive."""
    for where, pod, c in _every_container(overlay):
        projected = {
            name
            for name, v in volumes(pod).items()
            if {"configMap", "secret", "projected"} & set(v)
        }
        for mount in c.get("volumeMounts", []):
            if mount["name"] in projected:
                assert "subPath" not in mount and "subPathExpr" not in mount, where


def _gateway(overlay: str) -> tuple[Manifest, Manifest, Manifest]:
    deployment = find(overlay, "Deployment", "cpr-gateway")
    pod = deployment["spec"]["template"]["spec"]
    return deployment, pod, container(pod, "gateway")


def _routing(overlay: str) -> dict[str, object]:
    raw = yaml.safe_load(routing_yaml(overlay))
    assert isinstance(raw, dict)
    return raw


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_reads_routing_yaml_from_the_configmap_directory(overlay: str) -> None:
    """--config names a file in the directory the ConfigMap volume is mounted on."""
    _deployment, pod, gateway = _gateway(overlay)
    args = gateway["args"]
    config = args[args.index("--config") + 1]
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    directory, _, filename = config.rpartition("/")
    volume = volumes(pod)[mounts[directory]]
    assert volume["configMap"]["name"] == "cpr-gateway-config"
    assert filename in find(overlay, "ConfigMap", "cpr-gateway-config")["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_health_and_readiness_on_the_admin_port(overlay: str) -> None:
    """Readiness follows /readyz (503 while draining), liveness /healthz, both on admin."""
    _deployment, _pod, gateway = _gateway(overlay)
    ports = {port["name"]: port["containerPort"] for port in gateway["ports"]}
    assert ports == {"cpr-direkte": 5000, "admin": ADMIN_PORT}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    admin = _routing(overlay)["admin"]
    assert isinstance(admin, dict)
    assert (admin["host"], admin["port"]) == ("0.0.0.0", ADMIN_PORT)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kubelet_waits_for_the_drain(overlay: str) -> None:
    """terminationGracePeriodSeconds outlasts the preStop sleep and the gateway's drain: up to
    limits.grace_period for requests in flight, again for shadow copies, again for the mismatch
    store's writes (gateway.app.Gateway.aclose)."""
    _deployment, pod, gateway = _gateway(overlay)
    sleep = gateway["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    limits = _routing(overlay)["limits"]
    assert isinstance(limits, dict)
    grace = duration(limits["grace_period"], "limits.grace_period")
    assert pod["terminationGracePeriodSeconds"] > float(sleep[1]) + 3 * grace


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_autoscale_on_cpu_and_disruptions_leave_some_up(overlay: str) -> None:
    """At least two replicas, an autoscaling/v2 CPU target, a budget over the same pods."""
    deployment, _pod, _gateway_container = _gateway(overlay)
    assert deployment["spec"]["replicas"] >= 2
    hpa = find(overlay, "HorizontalPodAutoscaler", "cpr-gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "cpr-gateway"
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = find(overlay, "PodDisruptionBudget", "cpr-gateway")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_prod_keeps_more_up_than_dev() -> None:
    """prod: more replicas, and never more than one drained at a time."""
    dev, prod = (_gateway(overlay)[0]["spec"]["replicas"] for overlay in ("dev", "prod"))
    assert prod > dev
    assert find("prod", "PodDisruptionBudget", "cpr-gateway")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_admin_port_is_open_to_monitoring_only(overlay: str) -> None:
    """The client port admits any source; the admin port one namespace, monitoring."""
    policy = find(overlay, "NetworkPolicy", "cpr-gateway")
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert rules[5000] is None
    selector = {"kubernetes.io/metadata.name": "monitoring"}
    assert rules[ADMIN_PORT] == [{"namespaceSelector": {"matchLabels": selector}}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grpc_backend_round_robins_over_the_headless_service(overlay: str) -> None:
    """dns:/// of the services' headless Service in the overlay's namespace, round_robin."""
    service = find(overlay, "Service", "cpr-services")
    assert service["spec"]["clusterIP"] == "None"
    namespace = service["metadata"]["namespace"]
    grpc = [b for b in _routing_backends(overlay) if b["kind"] == "grpc"]
    assert [b["address"] for b in grpc] == [
        f"dns:///cpr-services.{namespace}.svc.cluster.local:50051"
    ]
    assert [b["balancing"] for b in grpc] == ["round_robin"]
    assert find(overlay, "Deployment", "cpr-services")["spec"]["replicas"] >= 2


def _routing_backends(overlay: str) -> list[dict[str, str]]:
    backends = _routing(overlay)["backends"]
    assert isinstance(backends, dict)
    return list(backends.values())
