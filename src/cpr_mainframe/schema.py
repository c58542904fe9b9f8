"""What emulator.yaml means, as frozen values: listener, TLS, files, timing, customers.

:mod:`cpr_mainframe.config` is the only producer, and nothing downstream
re-checks a value. File paths are absolute (resolved at load). Tests change a
loaded config with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from gateway.domain import calendar
from gateway.model import Family
from gateway.render.task import Task

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Maintenance windows and the answer date are read in the mainframe operators' time zone
#: (project rule); gateway.domain.calendar owns it so that every side agrees on PRODDTO.
TIMEZONE = calendar.TIMEZONE
local_zone = calendar.local_zone


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the emulator accepts CPR Direkte connections."""

    host: str = "127.0.0.1"
    port: int = 5001


@dataclass(frozen=True, slots=True)
class Tls:
    """Certificate and key presented on the port (TLS directly, no STARTTLS)."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, repr=False)
class User:
    """A user id of a customer: its seed password and the transaction codes granted to it.

    ``password`` only seeds the state store the first time the user is seen; from
    then on the store's scrypt hash is the truth and this value is never read.
    """

    id: str
    password: str
    grants: frozenset[Family]

    def __repr__(self) -> str:  # a password never reaches a log through repr
        return f"User(id={self.id!r}, password=<redacted>, grants={sorted(self.grants)})"


@dataclass(frozen=True, slots=True)
class Customer:
    """A KUNDENR: its users, the source networks it may connect from, and its task."""

    number: int
    users: tuple[User, ...]
    allow: tuple[IPNetwork, ...]
    task: Task = field(default_factory=Task)
    name: str = ""

    def user(self, user_id: str) -> User | None:
        """The user with ``user_id`` (compared after trimming the padding some clients send)."""
        wanted = user_id.strip()
        return next((user for user in self.users if user.id == wanted), None)

    def allows(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """True when ``address`` lies in one of the customer's networks."""
        return any(address in network for network in self.allow)


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
    scrypt_n: int = 2**14
    #: The file the config came from, for messages.
    source: Path | None = field(default=None, compare=False)

    def customer(self, number: int) -> Customer | None:
        """The customer with KUNDENR ``number``."""
        return next((c for c in self.customers if c.number == number), None)
