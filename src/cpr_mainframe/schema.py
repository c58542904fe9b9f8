"""What emulator.yaml means, as frozen values: listener, TLS, files, timing, customers.

:mod:`cpr_mainframe.config` is the only producer, and nothing downstream
re-checks a value. File paths are absolute (resolved at load). Tests change a
loaded config with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cpr_accounts.customers import Customer
from cpr_accounts.digests import PasswordCost
from gateway.config.schema import ProxyProtocol
from gateway.domain import calendar

#: Maintenance windows and the answer date are read in the mainframe operators' time zone
#: (project rule); gateway.domain.calendar owns it so that every side agrees on PRODDTO.
TIMEZONE = calendar.TIMEZONE
local_zone = calendar.local_zone


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the emulator accepts CPR Direkte connections."""

    host: str = "127.0.0.1"
    port: int = 5001
    #: Sources (a gateway, a load balancer) that open each connection with a PROXY v2
    #: header naming the client, whose address the allow-lists then see; None: nobody.
    proxy_protocol: ProxyProtocol | None = None


@dataclass(frozen=True, slots=True)
class Tls:
    """Certificate and key presented on the port (TLS directly, no STARTTLS), and the CA
    whose client certificates are required (None: no client certificate asked for)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """A daily maintenance window in local time; it may cross midnight (23:30-00:30)."""

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        """True when ``moment`` lies in [start, end)."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything the emulator is told; see the shipped emulator.yaml for each knob's meaning."""

    listen: Listen
    tls: Tls | None
    register: Path
    state: Path
    customers: tuple[Customer, ...]
    read_timeout_s: float = 10.0
    regions: int = 4
    queue_limit: int = 64
    service_time_ms: int = 0
    max_connections: int = 1024
    token_idle_minutes: float = 30.0
    maintenance: bool = False
    maintenance_windows: tuple[Window, ...] = ()
    #: Argon2id's cost for new password digests (and the one older digests are re-hashed to).
    password_cost: PasswordCost = field(default_factory=PasswordCost)
    #: The file the config came from, for messages.
    source: Path | None = field(default=None, compare=False)

    def customer(self, number: int) -> Customer | None:
        """The customer with KUNDENR ``number``."""
        return next((c for c in self.customers if c.number == number), None)
