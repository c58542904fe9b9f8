"""emulator.yaml → :class:`EmulatorConfig` (see :mod:`cpr_mainframe.schema`).

Loading reads the whole document and raises one :class:`ConfigError` listing every
problem, e.g. ``customers[1].users[0].password: has no digit``. Relative file paths
resolve against the YAML file's directory (as in routing.yaml), unless ``base`` is given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from cpr_accounts.auth import password_problem
from cpr_accounts.customers import Customer, IPNetwork, User
from cpr_accounts.digests import PasswordCost
from cpr_mainframe.schema import TIMEZONE, EmulatorConfig, Listen, Tls, Window, local_zone
from gateway.config.reader import read_yaml
from gateway.config.schema import ProxyProtocol
from gateway.errors import ConfigError
from gateway.model import Family
from gateway.render.task import OFF4_RECORD_TYPES, AddressStyle, NameFormat, Task

__all__ = [
    "Customer",
    "EmulatorConfig",
    "Listen",
    "Tls",
    "User",
    "Window",
    "default_config_path",
    "load_config",
    "local_zone",
]

T = TypeVar("T")
_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
#: A user id is what fits BRUGER-ID: 1-8 printable ASCII characters, no spaces.
_USER_ID = re.compile(r"[!-~]{1,8}")
#: 000 and 999 frame every answer; a task may list them, but cannot leave them out.
_FRAME_RECORDS = frozenset({"000", "999"})


_DEFAULTS = EmulatorConfig(Listen(), None, Path(), Path(), ())


def default_config_path() -> Path:
    """The emulator.yaml shipped with the package: two documented demo customers."""
    return Path(__file__).with_name("emulator.yaml")


def load_config(path: Path, *, base: Path | None = None) -> EmulatorConfig:
    """Load and validate ``path``; raises ConfigError listing every problem found.

    Relative file paths resolve against ``base``, by default the file's own directory.
    """
    raw = read_yaml(path)  # the routing loader's strict YAML: a duplicate key is an error
    # absolute(), not resolve(): the packaged default is a symlink to the top-level file.
    reader = _Reader(base if base is not None else path.absolute().parent)
    config = reader.config(raw, path)
    if reader.problems or config is None:
        raise ConfigError(reader.problems)
    return config


class _Problem(Exception):
    """One value is wrong; the caller records it under the value's path."""


_MISSING: Any = object()


class _Reader:
    """Reads the whole document, collecting path-qualified problems instead of stopping."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.problems: list[str] = []

    def get(
        self, raw: dict[str, Any], path: str, key: str, parse: Callable[[Any, str], T], default: T
    ) -> T:
        """``raw[key]`` parsed, or the default when absent.

        When the value is bad, the problem is recorded and a placeholder None comes
        back; the caller checks ``problems`` before it builds anything that keeps it.
        """
        where = f"{path}.{key}" if path else key
        if key not in raw:
            if default is _MISSING:
                self.problems.append(f"{where}: required")
                return cast(T, None)
            return default
        try:
            return parse(raw[key], where)
        except _Problem as problem:
            self.problems.append(f"{where}: {problem}")
            return cast(T, None)

    def mapping(self, raw: object, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
        """``raw`` as a mapping; unknown keys are problems."""
        if not isinstance(raw, dict):
            raise _Problem(f"expected a mapping with keys {', '.join(keys)}, got {_show(raw)}")
        for key in raw:
            if key not in keys:
                where = f"{path}.{key}" if path else str(key)
                self.problems.append(f"{where}: unknown key (expected {', '.join(keys)})")
        return raw

    def config(self, raw: object, source: Path) -> EmulatorConfig | None:
        """The whole document."""
        keys = tuple(f for f in EmulatorConfig.__dataclass_fields__ if f != "source")
        try:
            doc = self.mapping(raw, "", keys)
        except _Problem as problem:
            self.problems.append(f"(top level): {problem}")
            return None
        d = _DEFAULTS

        def get(key: str, parse: Callable[[Any, str], T], default: T = _MISSING) -> T:
            return self.get(doc, "", key, parse, default)

        config = EmulatorConfig(
            listen=get("listen", self.listen),
            tls=get("tls", self.tls),
            register=get("register", self.file),
            state=get("state", self.file),
            customers=get("customers", self.customers),
            read_timeout_s=get("read_timeout_s", _positive, d.read_timeout_s),
            regions=get("regions", _int_at_least(1), d.regions),
            queue_limit=get("queue_limit", _int_at_least(0), d.queue_limit),
            service_time_ms=get("service_time_ms", _int_at_least(0), d.service_time_ms),
            max_connections=get("max_connections", _int_at_least(1), d.max_connections),
            token_idle_minutes=get("token_idle_minutes", _positive, d.token_idle_minutes),
            maintenance=get("maintenance", _bool, d.maintenance),
            maintenance_windows=get("maintenance_windows", self.windows, d.maintenance_windows),
            password_cost=get("password_cost", self.password_cost, d.password_cost),
            source=source,
        )
        return None if self.problems else config

    def listen(self, raw: object, path: str) -> Listen:
        """Host and port; the sources trusted to send a PROXY v2 header first."""
        s = self.mapping(raw, path, ("host", "port", "proxy_protocol"))
        host = self.get(s, path, "host", _string, _DEFAULTS.listen.host)
        port = self.get(s, path, "port", _port, _DEFAULTS.listen.port)
        proxy = self.get(s, path, "proxy_protocol", self.proxy_protocol, None)
        return Listen(host, port, proxy)

    def proxy_protocol(self, raw: object, path: str) -> ProxyProtocol:
        """``trusted``: networks (CIDR) whose connections open with a PROXY v2 header."""
        s = self.mapping(raw, path, ("trusted",))
        trusted = self.get(
            s, path, "trusted", lambda v, p: self.items(v, p, _network, allow_empty=False), _MISSING
        )
        return ProxyProtocol(tuple(trusted or ()))

    def password_cost(self, raw: object, path: str) -> PasswordCost:
        """Argon2id's ``memory_kib``, ``iterations`` and ``lanes``; absent ones: the guidance."""
        s = self.mapping(raw, path, ("memory_kib", "iterations", "lanes"))
        d, known = _DEFAULTS.password_cost, len(self.problems)
        memory = self.get(s, path, "memory_kib", _int_at_least(1), d.memory_kib)
        iterations = self.get(s, path, "iterations", _int_at_least(1), d.iterations)
        lanes = self.get(s, path, "lanes", _int_at_least(1), d.lanes)
        if len(self.problems) > known:  # each bad part is told already
            return d
        try:
            return PasswordCost(memory, iterations, lanes)
        except ValueError as exc:
            raise _Problem(str(exc)) from None

    def tls(self, raw: object, path: str) -> Tls | None:
        """Certificate and key, or null for plaintext (tests, trusted networks); ``client_ca``
        requires clients (the gateway) to present a certificate it signed."""
        if raw is None:
            return None
        s = self.mapping(raw, path, ("cert", "key", "client_ca"))
        cert = self.get(s, path, "cert", self.file, _MISSING)
        key = self.get(s, path, "key", self.file, _MISSING)
        client_ca = self.get(s, path, "client_ca", self.file, None)
        return Tls(cert, key, client_ca)

    def file(self, raw: object, path: str) -> Path:
        """A path, resolved against the base directory."""
        return self.base / _string(raw, path)

    def windows(self, raw: object, path: str) -> tuple[Window, ...]:
        """Daily "HH:MM-HH:MM" windows in Europe/Copenhagen time."""
        windows = tuple(self.items(raw, path, _window))
        if windows and local_zone() is dt.UTC:
            raise _Problem(f"this system has no time zone data for {TIMEZONE}")
        return windows

    def customers(self, raw: object, path: str) -> tuple[Customer, ...]:
        """The customer list; KUNDENR must be unique."""
        customers = self.items(raw, path, self.customer, allow_empty=False)
        for index, number in _repeated(raw, "number", _customer_number):
            self.problems.append(f"{path}[{index}].number: {number:04d} is repeated")
        return tuple(customers)

    def customer(self, raw: object, path: str) -> Customer:
        """One customer."""
        s = self.mapping(raw, path, ("number", "name", "allow", "task", "users"))
        number = self.get(s, path, "number", _customer_number, _MISSING)
        name = self.get(s, path, "name", _string, "")
        allow = self.get(s, path, "allow", lambda v, p: self.items(v, p, _network), _MISSING)
        task = self.get(s, path, "task", self.task, Task())
        users = self.get(s, path, "users", self.users, _MISSING)
        return Customer(number, users, tuple(allow or ()), task, name)

    def users(self, raw: object, path: str) -> tuple[User, ...]:
        """A customer's users; ids must be unique within it."""
        users = self.items(raw, path, self.user, allow_empty=False)
        for index, user_id in _repeated(raw, "id", _user_id):
            self.problems.append(f"{path}[{index}].id: {user_id!r} is repeated")
        return tuple(users)

    def user(self, raw: object, path: str) -> User:
        """One user: id, seed password (spec §7 rules), granted transaction codes."""
        s = self.mapping(raw, path, ("id", "password", "grants"))
        user_id = self.get(s, path, "id", _user_id, _MISSING)
        password = self.get(s, path, "password", _password, _MISSING)
        grants = self.get(s, path, "grants", lambda v, p: self.items(v, p, _family), _MISSING)
        return User(user_id, password, frozenset(grants or ()))

    def task(self, raw: object, path: str) -> Task:
        """The customer's task parameters (spec §2); absent keys take the spec's defaults."""
        keys = tuple(Task.__dataclass_fields__)
        s = self.mapping(raw, path, keys)
        d = Task()
        name_format = self.get(s, path, "name_format", _enum(NameFormat), d.name_format)
        exclude = self.get(s, path, "exclude_protected", _bool, d.exclude_protected)
        deceased = self.get(s, path, "deceased_address", _bool, d.deceased_address)
        records = self.get(s, path, "off4_records", self.off4_records, d.off4_records)
        style = self.get(s, path, "address_style", _enum(AddressStyle), d.address_style)
        suffix = self.get(s, path, "task_suffix", _task_suffix, d.task_suffix)
        parts = (name_format, exclude, deceased, records, style, suffix)
        if any(part is None for part in parts):
            return d  # a placeholder: the problems recorded make the load fail
        return Task(name_format, exclude, deceased, records, style, suffix)

    def off4_records(self, raw: object, path: str) -> frozenset[str]:
        """OFF4 person record types delivered; 000 and 999 may be listed and are always sent."""
        return frozenset(self.items(raw, path, _off4_record)) - _FRAME_RECORDS

    def items(
        self, raw: object, path: str, parse: Callable[[Any, str], T], *, allow_empty: bool = True
    ) -> list[T]:
        """A list, each item parsed and its problems recorded under ``path[i]``."""
        if not isinstance(raw, list) or (not raw and not allow_empty):
            raise _Problem(
                f"expected a {'' if allow_empty else 'non-empty '}list, got {_show(raw)}"
            )
        values: list[T] = []
        for index, item in enumerate(raw):
            where = f"{path}[{index}]"
            before = len(self.problems)
            try:
                value = parse(item, where)
            except _Problem as problem:
                self.problems.append(f"{where}: {problem}")
                continue
            if len(self.problems) == before:
                values.append(value)
        return values


def _repeated(raw: object, key: str, parse: Callable[[Any, str], T]) -> Iterator[tuple[int, T]]:
    """(index, value) of each list item whose ``key`` repeats an earlier item's."""
    seen: list[T] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if not (isinstance(item, dict) and key in item):
            continue
        try:
            value = parse(item[key], key)
        except _Problem:
            continue  # reported where the item itself is read
        if value in seen:
            yield index, value
        seen.append(value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _string(raw: object, _path: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise _Problem(f"expected a non-empty string, got {_show(raw)}")
    return raw


def _bool(raw: object, _path: str) -> bool:
    if not isinstance(raw, bool):
        raise _Problem(f"expected true or false, got {_show(raw)}")
    return raw


def _int(raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise _Problem(f"expected an integer, got {_show(raw)}")
    return raw


def _int_at_least(low: int) -> Callable[[object, str], int]:
    def parse(raw: object, _path: str) -> int:
        value = _int(raw)
        if value < low:
            raise _Problem(f"must be at least {low}, got {value}")
        return value

    return parse


def _positive(raw: object, _path: str) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool) or raw <= 0:
        raise _Problem(f"expected a number greater than 0, got {_show(raw)}")
    return float(raw)


def _port(raw: object, _path: str) -> int:
    port = _int(raw)
    if not 0 <= port <= 65535:
        raise _Problem(f"port {port} is outside 0-65535")
    return port


def _customer_number(raw: object, _path: str) -> int:
    # YAML reads 0001 as the integer 1; both spellings mean the same KUNDENR.
    text = raw if isinstance(raw, str) else str(_int(raw))
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or int(text) == 0:
        raise _Problem(f"a KUNDENR is 1-9999, got {_show(raw)}")
    return int(text)


def _user_id(raw: object, path: str) -> str:
    text = _string(raw, path)
    if not _USER_ID.fullmatch(text):
        raise _Problem(f"a user id is 1-8 printable ASCII characters, got {_show(raw)}")
    return text


def _password(raw: object, path: str) -> str:
    problem = password_problem(_string(raw, path))
    if problem is not None:
        raise _Problem(problem)  # the message never holds the password itself
    return str(raw)


def _family(raw: object, _path: str) -> Family:
    try:
        return Family(raw if isinstance(raw, str) else "")
    except ValueError:
        known = ", ".join(Family)
        raise _Problem(f"unknown transaction code {_show(raw)} (served: {known})") from None


def _enum(kind: type[NameFormat] | type[AddressStyle]) -> Callable[[object, str], Any]:
    def parse(raw: object, _path: str) -> Any:
        try:
            return kind(raw)
        except ValueError:
            known = ", ".join(str(member.value) for member in kind)
            raise _Problem(f"unknown value {_show(raw)} (known: {known})") from None

    return parse


def _task_suffix(raw: object, _path: str) -> str:
    if not isinstance(raw, str) or len(raw) != 2 or not (raw.isascii() and raw.isdigit()):
        raise _Problem(f'expected two digits in quotes ("01"), got {_show(raw)}')
    return raw


def _off4_record(raw: object, _path: str) -> str:
    if not isinstance(raw, str) or raw not in OFF4_RECORD_TYPES | _FRAME_RECORDS:
        raise _Problem(f'not an OFF4 record type: {_show(raw)} (e.g. "001"-"020", "050")')
    return raw


def _network(raw: object, _path: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(raw if isinstance(raw, str) else "", strict=True)
    except ValueError as exc:
        raise _Problem(f"not a network in CIDR notation: {_show(raw)} ({exc})") from None


def _window(raw: object, _path: str) -> Window:
    found = _WINDOW.fullmatch(raw) if isinstance(raw, str) else None
    if found is None:
        raise _Problem(f'expected "HH:MM-HH:MM", got {_show(raw)}')
    h1, m1, h2, m2 = (int(part) for part in found.groups())
    if (h1, m1) == (h2, m2):
        raise _Problem(f"window {raw} is empty")
    return Window(dt.time(h1, m1), dt.time(h2, m2))
