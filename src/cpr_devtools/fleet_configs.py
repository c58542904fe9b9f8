"""What a fleet on one machine is, and the configs it writes under ``var/fleet/``: one
routing.yaml per gateway replica, the emulator's config, HAProxy's config.

Pure builders: a loaded YAML document (a dict) in, the fleet's document out, so that what
the fleet runs can be read and tested without starting anything. Every path written is
absolute and every address but HAProxy's client port is loopback.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cpr_devtools.haproxy import tcp_head
from cpr_devtools.pki import GATEWAY_CLIENT, DevPki
from cpr_devtools.postgres import Cluster

LOOPBACK = "127.0.0.1"
#: HAProxy connects to the replicas from this address (all of 127.0.0.0/8 is this machine)
#: and the replicas trust only it to open with a PROXY header: a client on 127.0.0.1 still
#: reaches a replica directly, without one, as `cpr-gateway lookup --port 5100` does.
BALANCER_SOURCE = "127.0.0.2"
#: The gateways reach the emulator and the services from here; both trust it to name the
#: client (a PROXY header, the x-cpr-client-address metadata).
GATEWAY_SOURCE = LOOPBACK
#: The databases the fleet keeps in its PostgreSQL.
SHADOW_DB = "shadow"
SERVICES_DB = "services"
#: HAProxy's silence limits, above the gateway's own read timeout and route deadlines, so
#: that the gateway, not HAProxy, decides when a client or a backend is too slow.
BALANCER_TIMEOUT_S = 30
#: Connections HAProxy holds at once: two replicas' worth of the gateway's default
#: limits.max_connections (2048).
BALANCER_MAXCONN = 4096


@dataclass(frozen=True, slots=True)
class FleetPorts:
    """Where each part listens; replica *i* of the gateway on ``gateway + i`` and
    ``admin + i``, replica *j* of the services on ``services[j]``."""

    balancer: int = 5000
    emulator: int = 5001
    gateway: int = 5100
    admin: int = 9110
    redis: int = 6390
    postgres: int = 5440
    services: tuple[int, ...] = (50051, 50052)

    def shifted(self, offset: int) -> FleetPorts:
        """Every port moved by ``offset`` (a second fleet beside the first, or a test's)."""
        ports = {f.name: getattr(self, f.name) for f in fields(self)}
        single = {name: port + offset for name, port in ports.items() if isinstance(port, int)}
        return replace(self, **single, services=tuple(port + offset for port in self.services))

    def every(self, replicas: int) -> list[int]:
        """Every port a fleet of ``replicas`` gateway replicas listens on."""
        single = [self.balancer, self.emulator, self.redis, self.postgres, *self.services]
        gateways = [base + i for base in (self.gateway, self.admin) for i in range(replicas)]
        return single + gateways


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """A fleet: how many gateway replicas, where each part listens, where its files are."""

    replicas: int
    #: The stack's var/ directory, absolute: certificates, register, shadow key, fleet/.
    var: Path
    ports: FleetPorts
    #: Where HAProxy takes clients: routing.yaml's listen host (0.0.0.0 as shipped).
    balancer_host: str
    #: How the reference services drift (``cpr-gateway backend --drift``); empty: not at all.
    drift: str = ""

    @property
    def dir(self) -> Path:
        """var/fleet/: every config the fleet writes, Redis's and PostgreSQL's data."""
        return self.var / "fleet"

    @property
    def pki(self) -> DevPki:
        """The development CA and certificates (var/tls/), as `make run` uses them."""
        return DevPki(self.var / "tls")

    @property
    def register(self) -> Path:
        """The synthetic register the emulator answers from and the services migrate."""
        return self.var / "register.sqlite"

    @property
    def admin_token(self) -> Path:
        """Every replica's admin API token (the default stack's file: one token for both)."""
        return self.var / "admin.token"

    @property
    def cluster(self) -> Cluster:
        """The fleet's PostgreSQL cluster, under var/fleet/pg/."""
        return Cluster(self.dir / "pg", LOOPBACK, self.ports.postgres)

    @property
    def stats_socket(self) -> Path:
        """HAProxy's admin socket (``show stat``, ``disable server``)."""
        return self.dir / "haproxy.sock"

    @property
    def emulator_config(self) -> Path:
        """The fleet's emulator.yaml (the services read their customers from it too)."""
        return self.dir / "emulator.yaml"

    @property
    def haproxy_config(self) -> Path:
        """HAProxy's config."""
        return self.dir / "haproxy.cfg"

    def routing_path(self, index: int) -> Path:
        """The routing.yaml of gateway replica ``index``."""
        return self.dir / f"gateway-{index}.yaml"

    def redis_url(self) -> str:
        """The gateways' shared session store."""
        return f"redis://{LOOPBACK}:{self.ports.redis}/0"

    def dsn(self, database: str) -> str:
        """A database of the fleet's PostgreSQL, as its superuser (trusted on loopback)."""
        return self.cluster.dsn(database)

    def services_target(self) -> str:
        """The gRPC target naming every services replica, for round-robin balancing."""
        return "ipv4:" + ",".join(f"{LOOPBACK}:{port}" for port in self.ports.services)


def replica_routing(raw: dict[str, Any], plan: FleetPlan, index: int) -> dict[str, Any]:
    """routing.yaml ``raw`` as gateway replica ``index`` of the fleet runs it.

    Routes and limits are kept, so the fleet routes as `make run` does. Changed: its own
    ports on loopback, a PROXY header required from HAProxy, sessions in Redis, the shadow
    store and the canary state in PostgreSQL, every legacy backend on the fleet's emulator
    (with the client's address in a PROXY header), every grpc backend balanced over the
    services replicas, the audit log in var/ for all of them.
    """
    doc = copy.deepcopy(raw)
    gateway_tls = {"cert": str(plan.pki.cert("gateway")), "key": str(plan.pki.key("gateway"))}
    doc["listen"] = {
        **doc["listen"],
        "host": LOOPBACK,
        "port": plan.ports.gateway + index,
        "tls": gateway_tls,
        "proxy_protocol": {"trusted": [f"{BALANCER_SOURCE}/32"]},
    }
    doc["admin"] = {**(doc.get("admin") or {}), "host": LOOPBACK, "port": plan.ports.admin + index}
    if doc["admin"].get("token_file") is not None:  # one admin token for every replica
        doc["admin"]["token_file"] = str(plan.admin_token)
    doc["sessions"] = {**(doc.get("sessions") or {}), "store": plan.redis_url()}
    doc["backends"] = {name: _backend(value, plan) for name, value in doc["backends"].items()}
    doc["shadowing"] = {
        **(doc.get("shadowing") or {}),
        "store": plan.dsn(SHADOW_DB),
        # One key for every replica: a PNR's pseudonym is the same whichever replica saw it.
        "key_file": str(plan.var / "shadow.key"),
    }
    # One canary state for the fleet: every replica applies the same step, and one decides.
    doc["canary"] = {**(doc.get("canary") or {}), "store": plan.dsn(SHADOW_DB)}
    if doc.get("audit") is not None:  # one directory (a file per process) and one key
        doc["audit"] = {
            **doc["audit"],
            "directory": str(plan.var / "audit"),
            "key_file": str(plan.var / "audit.key"),
        }
    return doc


def _backend(backend: dict[str, Any], plan: FleetPlan) -> dict[str, Any]:
    # Every hop is TLS, as in `make run`: the gateway verifies var/'s CA and presents its
    # client certificate (the services require it, and take it as the gateway's identity).
    tls = {
        "ca": str(plan.pki.ca_cert),
        "server_name": "localhost",
        "cert": str(plan.pki.cert(GATEWAY_CLIENT)),
        "key": str(plan.pki.key(GATEWAY_CLIENT)),
    }
    if backend.get("kind") == "legacy":
        address = f"{LOOPBACK}:{plan.ports.emulator}"
        # The emulator sees each client through the PROXY header, which names a client not
        # yet come when a connection is opened ahead: no spares then.
        rest = {key: value for key, value in backend.items() if key != "spare_connections"}
        return {**rest, "address": address, "tls": tls, "proxy_protocol": True}
    if backend.get("kind") == "grpc":
        target = plan.services_target()
        return {**backend, "address": target, "tls": tls, "balancing": "round_robin"}
    return dict(backend)


def fleet_emulator(raw: dict[str, Any], plan: FleetPlan) -> dict[str, Any]:
    """emulator.yaml ``raw`` as the fleet runs it: on loopback, naming the client from the
    gateways' PROXY headers, with var/'s certificate and register and its own state file."""
    doc = copy.deepcopy(raw)
    doc["listen"] = {
        **(doc.get("listen") or {}),
        "host": LOOPBACK,
        "port": plan.ports.emulator,
        "proxy_protocol": {"trusted": [f"{GATEWAY_SOURCE}/32"]},
    }
    doc["tls"] = {"cert": str(plan.pki.cert("emulator")), "key": str(plan.pki.key("emulator"))}
    doc["register"] = str(plan.register)
    doc["state"] = str(plan.dir / "emulator-state.sqlite")
    return doc


def haproxy_cfg(plan: FleetPlan) -> str:
    """HAProxy in TCP mode in front of the replicas: round robin, the client's address in a
    PROXY v2 header, each replica checked on its admin port's /readyz (a draining replica
    says 503 there and is taken out), and a connection a replica refuses retried on another.
    TLS passes through: the replicas terminate it, as a single gateway does."""
    admin = f"stats socket {plan.stats_socket} mode 600 level admin"
    servers = [
        f"    server gateway-{i} {LOOPBACK}:{plan.ports.gateway + i}"
        f" check port {plan.ports.admin + i}"
        for i in range(plan.replicas)
    ]
    return "\n".join(
        [
            *tcp_head(maxconn=BALANCER_MAXCONN, timeout_s=BALANCER_TIMEOUT_S, settings=(admin,)),
            "    retries 2",
            "    option redispatch 1",
            "frontend cpr",
            f"    bind {plan.balancer_host}:{plan.ports.balancer}",
            "    default_backend gateways",
            "backend gateways",
            "    balance roundrobin",
            "    option httpchk GET /readyz",
            f"    default-server send-proxy-v2 source {BALANCER_SOURCE} inter 1s fall 2 rise 2",
            *servers,
            "",
        ]
    )
