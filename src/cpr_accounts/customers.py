"""Customers (KUNDENR) and their user ids, as both simulated backends are configured with them.

The mainframe emulator reads them from emulator.yaml (:mod:`cpr_mainframe.config`); the
reference services are started with the same customers, so that both sides accept the same
logons. :class:`Directory` is what a backend needs of that configuration.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from cpr_accounts.digests import PasswordCost
from gateway.model import Family
from gateway.render.task import Task

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True, repr=False)
class User:
    """A user id of a customer: its seed password and the transaction codes granted to it.

    ``password`` only seeds the state store the first time the user is seen; from
    then on the store's digest is the truth and this value is never read.
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

    def allows(self, address: IPAddress) -> bool:
        """True when ``address`` lies in one of the customer's networks."""
        return any(address in network for network in self.allow)


class Directory(Protocol):
    """The customers a backend serves, and how it keeps their passwords and tokens."""

    @property
    def customers(self) -> tuple[Customer, ...]:
        """Every customer, each with its users (whose passwords seed the state store)."""
        ...

    @property
    def password_cost(self) -> PasswordCost:
        """Argon2id's cost for new password digests."""
        ...

    @property
    def token_idle_minutes(self) -> float:
        """How long a token lives without use."""
        ...

    def customer(self, number: int) -> Customer | None:
        """The customer with KUNDENR ``number``."""
        ...
