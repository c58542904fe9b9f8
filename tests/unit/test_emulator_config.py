"""emulator.yaml: the shipped demo config, path resolution, and path-qualified errors."""

from __future__ import annotations

import datetime as dt
import ipaddress
import textwrap
from pathlib import Path

import pytest

from cpr_mainframe import default_config_path, load_config
from cpr_mainframe.config import Window
from cpr_mainframe.handler import in_maintenance
from gateway.errors import ConfigError
from gateway.model import Family
from gateway.render.task import OFF4_RECORD_TYPES, AddressStyle, NameFormat

MINIMAL = """\
listen: {host: 127.0.0.1, port: 5001}
tls: null
register: reg.sqlite
state: state.sqlite
customers:
  - number: "0001"
    allow: [127.0.0.0/8]
    users:
      - {id: U1, password: "Demo#123", grants: [PRIV]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emulator.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_shipped_config_has_the_two_documented_demo_customers() -> None:
    """0001/DEMO0001/Demo#123 with PRIV; 0002/DEMO0002/Demo#456 with OFF4 records 001-020, 050."""
    config = load_config(default_config_path())
    private, authority = config.customers
    assert (private.number, private.users[0].id, private.users[0].password) == (
        1,
        "DEMO0001",
        "Demo#123",
    )
    assert private.users[0].grants == {Family.PRIV}
    assert (authority.number, authority.users[0].id, authority.users[0].password) == (
        2,
        "DEMO0002",
        "Demo#456",
    )
    assert authority.users[0].grants == {Family.OFF4}
    assert authority.task.off4_records == OFF4_RECORD_TYPES
    assert config.token_idle_minutes == 30
    assert config.tls is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "172.20.0.5", "192.168.1.9"])
def test_shipped_allow_list_takes_loopback_and_private_ranges(address: str) -> None:
    """Behind the gateway the emulator sees the gateway's address: loopback or private."""
    customer = load_config(default_config_path()).customers[0]
    assert customer.allows(ipaddress.ip_address(address))


def test_shipped_allow_list_refuses_public_addresses() -> None:
    """A public address is outside the demo allow-list."""
    customer = load_config(default_config_path()).customers[0]
    assert not customer.allows(ipaddress.ip_address("8.8.8.8"))


def test_minimal_config_takes_defaults_and_resolves_paths_against_the_file(
    tmp_path: Path,
) -> None:
    """Absent knobs take their defaults; relative paths resolve against the YAML's directory."""
    config = load_config(write(tmp_path, MINIMAL))
    assert config.register == tmp_path.resolve() / "reg.sqlite"
    assert config.tls is None
    assert (config.regions, config.queue_limit, config.service_time_ms) == (4, 64, 0)
    assert config.customers[0].task.name_format is NameFormat.LAST_FIRST
    assert config.customers[0].task.address_style is AddressStyle.HISTORIC


def test_base_overrides_where_relative_paths_point(tmp_path: Path) -> None:
    """``base`` makes relative paths resolve elsewhere (e.g. the working directory)."""
    config = load_config(write(tmp_path, MINIMAL), base=Path("/srv/emu"))
    assert config.state == Path("/srv/emu/state.sqlite")


BAD_VALUES = [
    ('password: "Demo#123"', 'password: "demo#123"',
     "customers[0].users[0].password: has no upper-case letter"),
    ('password: "Demo#123"', 'password: "Demo#12"',
     "customers[0].users[0].password: must be exactly 8 characters, has 7"),
    ("grants: [PRIV]", "grants: [ADRM]",
     "customers[0].users[0].grants[0]: unknown transaction code 'ADRM'"),
    ("id: U1", "id: TOOLONGID", "customers[0].users[0].id: a user id is 1-8 printable"),
    ("allow: [127.0.0.0/8]", "allow: [127.0.0.1/8]",
     "customers[0].allow[0]: not a network in CIDR notation"),
    ('number: "0001"', 'number: "12345"', "customers[0].number: a KUNDENR is 1-9999"),
    ("port: 5001", "port: 70000", "listen.port: port 70000 is outside 0-65535"),
    ("tls: null", "tls: {cert: a.crt}", "tls.key: required"),
    ("state: state.sqlite", "stat: state.sqlite", "stat: unknown key"),
    ("state: state.sqlite", "state: state.sqlite\nregions: 0", "regions: must be at least 1"),
    ("state: state.sqlite", "state: state.sqlite\nmaintenance: yes please",
     "maintenance: expected true or false"),
    ("state: state.sqlite", 'state: state.sqlite\nmaintenance_windows: ["25:00-01:00"]',
     'maintenance_windows[0]: expected "HH:MM-HH:MM"'),
    ("state: state.sqlite", "state: state.sqlite\npassword_cost: {memory_kib: 4}",
     "password_cost: memory_kib must be 8-1048576, got 4"),
    ("state: state.sqlite", "state: state.sqlite\npassword_cost: {iterations: 0}",
     "password_cost.iterations: must be at least 1"),
    ("state: state.sqlite", "state: state.sqlite\npassword_cost: {n: 16384}",
     "password_cost.n: unknown key"),
    ("state: state.sqlite", "state: state.sqlite\nscrypt_n: 16384", "scrypt_n: unknown key"),
    ("grants: [PRIV]}", "grants: [PRIV]}\n    task: {name_format: surname}",
     "customers[0].task.name_format: unknown value 'surname'"),
    ("grants: [PRIV]}", 'grants: [PRIV]}\n    task: {off4_records: ["001", "021"]}',
     "customers[0].task.off4_records[1]: not an OFF4 record type: '021'"),
    ("grants: [PRIV]}", "grants: [PRIV]}\n    task: {task_suffix: 1}",
     "customers[0].task.task_suffix: expected two digits"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), BAD_VALUES, ids=lambda v: str(v)[:24])
def test_problem_is_named_by_its_yaml_path(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """Each bad value is reported with its YAML path and what is wrong with it."""
    assert old in MINIMAL
    problems = problems_of(tmp_path, MINIMAL.replace(old, new))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Two bad values in different sections give two problems in one ConfigError."""
    text = MINIMAL.replace("port: 5001", "port: -1").replace('"Demo#123"', '"x"')
    problems = problems_of(tmp_path, text)
    assert len(problems) == 2
    assert problems[0].startswith("listen.port:")
    assert problems[1].startswith("customers[0].users[0].password:")


def test_password_problem_never_shows_the_password(tmp_path: Path) -> None:
    """A rejected seed password is described, not echoed."""
    problems = problems_of(tmp_path, MINIMAL.replace('"Demo#123"', '"Secret#1x"'))
    assert problems and all("Secret#1x" not in problem for problem in problems)


def test_repeated_customer_and_user_are_problems(tmp_path: Path) -> None:
    """KUNDENR and user ids within a customer must be unique."""
    text = MINIMAL + (
        "  - number: 1\n"
        "    allow: [10.0.0.0/8]\n"
        "    users:\n"
        '      - {id: A, password: "Demo#123", grants: [PRIV]}\n'
        '      - {id: A, password: "Demo#123", grants: [PRIV]}\n'
    )
    problems = problems_of(tmp_path, text)
    assert "customers[1].users[1].id: 'A' is repeated" in problems
    assert "customers[1].number: 0001 is repeated" in problems


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it, not an OSError."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("window", "inside", "outside"),
    [
        (Window(dt.time(2), dt.time(3)), dt.time(2, 30), dt.time(3)),
        (Window(dt.time(23, 30), dt.time(0, 30)), dt.time(0, 10), dt.time(12)),
        (Window(dt.time(23, 30), dt.time(0, 30)), dt.time(23, 45), dt.time(0, 30)),
    ],
)
def test_window_contains_start_not_end_and_may_cross_midnight(
    window: Window, inside: dt.time, outside: dt.time
) -> None:
    """Windows are [start, end) and wrap past midnight."""
    assert window.contains(inside)
    assert not window.contains(outside)


def test_windows_are_copenhagen_time_in_summer_too(tmp_path: Path) -> None:
    """02:00-03:00 means Copenhagen time: 00:30 UTC in July (CEST, UTC+2) is inside."""
    text = MINIMAL + 'maintenance_windows: ["02:00-03:00"]\n'
    config = load_config(write(tmp_path, text))
    assert in_maintenance(config, dt.datetime(2026, 7, 1, 0, 30, tzinfo=dt.UTC))
    assert not in_maintenance(config, dt.datetime(2026, 7, 1, 2, 30, tzinfo=dt.UTC))


def test_a_duplicate_key_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    """Two `regions:` lines are an error with the line number, as in routing.yaml."""
    text = (
        default_config_path()
        .read_text(encoding="utf-8")
        .replace("regions: 4\n", "regions: 4\nregions: 1\n")
    )
    path = tmp_path / "emulator.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'regions'"):
        load_config(path)
