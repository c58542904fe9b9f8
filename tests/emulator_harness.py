"""Run a real emulator inside a test: real TCP (and TLS) on loopback, port 0, real files.

    from cpr_devtools.client import logon, lookup
    from emulator_harness import DEMO_PRIV, running_emulator

    async def test_lookup() -> None:
        async with running_emulator() as emu:
            token = await logon(emu.endpoint, DEMO_PRIV.who, DEMO_PRIV.password)
            answer = await lookup(emu.endpoint, DEMO_PRIV.who, token, emu.pnrs(1)[0])

What :func:`running_emulator` does to the config it is given (default: the shipped
emulator.yaml): listens on 127.0.0.1 port 0 (its ``listen.proxy_protocol`` kept); answers
from a register of ``persons`` generated once per process into a temporary directory
(seed 1); keeps its state in ``workdir`` (a fresh temporary directory unless given, so
pass the same ``workdir`` twice to test a restart); presents a certificate from a
throwaway development CA in ``workdir/tls`` unless ``tls=False``; and lowers the password
digests' cost to the minimum, so logons take milliseconds. Everything else (customers, timing,
maintenance) is the caller's: change it with :func:`dataclasses.replace` before passing
it in.
"""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from cpr_accounts.clock import Clock, utc_now
from cpr_accounts.digests import PasswordCost
from cpr_devtools.client import Credentials, Endpoint
from cpr_devtools.pki import ensure_dev_pki
from cpr_mainframe.config import EmulatorConfig, Tls, default_config_path, load_config
from cpr_mainframe.register.generate import generate
from cpr_mainframe.register.store import Register
from cpr_mainframe.server import Emulator
from gateway.tls import client_context

#: The cheapest Argon2id cost the config accepts: tests log on often.
TEST_PASSWORD_COST = PasswordCost(memory_kib=8, iterations=1, lanes=1)


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A demo user of the shipped config: who it is on the wire, and its password."""

    who: Credentials
    password: str


DEMO_PRIV = DemoUser(Credentials("PRIV", "0001", "DEMO0001"), "Demo#123")
DEMO_OFF4 = DemoUser(Credentials("OFF4", "0002", "DEMO0002"), "Demo#456")


@dataclass
class FakeClock:
    """A clock that moves only when told; pass it as ``clock=`` to control time in a test."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        """Move time forward by ``delta``."""
        self.now += delta


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A started emulator and how to reach it."""

    emulator: Emulator
    #: The config it runs with, after the overrides above.
    config: EmulatorConfig
    host: str
    port: int
    #: The CA certificate to trust, or None when it speaks plaintext.
    ca: Path | None

    @property
    def endpoint(self) -> Endpoint:
        """Where a :mod:`cpr_devtools.client` call reaches it, TLS verified against :attr:`ca`."""
        if self.ca is None:
            return Endpoint(self.host, self.port)
        return Endpoint(self.host, self.port, client_context(self.ca), "localhost")

    def pnrs(self, limit: int | None = None, status: str | None = None) -> list[str]:
        """PNRs of persons in its register, ascending (optionally only with ``status``)."""
        register = Register.open(self.config.register)
        try:
            return register.pnrs(limit=limit, status=status)
        finally:
            register.close()


@asynccontextmanager
async def running_emulator(
    config: EmulatorConfig | None = None,
    *,
    workdir: Path | None = None,
    tls: bool = True,
    clock: Clock = utc_now,
    persons: int = 300,
    grace: float = 1.0,
) -> AsyncIterator[RunningEmulator]:
    """Start an emulator for the duration of the ``async with``; closed with ``grace`` seconds."""
    async with AsyncExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base = config if config is not None else load_config(default_config_path())
        ca = None
        server_tls = None
        if tls:
            pki = ensure_dev_pki(workdir / "tls", servers=("emulator",))
            ca, server_tls = pki.ca_cert, Tls(pki.cert("emulator"), pki.key("emulator"))
        effective = replace(
            base,
            listen=replace(base.listen, host="127.0.0.1", port=0),
            tls=server_tls,
            register=register_of(persons),
            state=workdir / "emulator-state.sqlite",
            password_cost=TEST_PASSWORD_COST,
        )
        emulator = Emulator(effective, clock=clock)
        host, port = await emulator.start()
        stack.push_async_callback(emulator.aclose, grace)
        yield RunningEmulator(emulator, effective, host, port, ca)


_registers: dict[int, Path] = {}


def first_pnr(register_path: Path) -> str:
    """The lowest PNR of the register at ``register_path``."""
    register = Register.open(register_path)
    try:
        return register.pnrs(limit=1)[0]
    finally:
        register.close()


def register_of(persons: int) -> Path:
    """A register of ``persons`` (seed 1), generated once per process; treat it as read-only."""
    path = _registers.get(persons)
    if path is None:
        path = _register_dir() / f"register-{persons}.sqlite"
        generate(path, count=persons, seed=1)
        _registers[persons] = path
    return path


_directory: list[Path] = []


def _register_dir() -> Path:
    if not _directory:
        made = Path(tempfile.mkdtemp(prefix="cpr-emulator-registers-"))
        # A register is the same for every test, so one copy serves the whole process.
        atexit.register(shutil.rmtree, made, True)
        _directory.append(made)
    return _directory[0]
