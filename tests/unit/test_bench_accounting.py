"""cpr_bench.accounting: functions and coroutines accounted by the thread's CPU clock, in
place, without changing what they return or raise; every account names a function this
tree has."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import types
from pathlib import Path

import pytest

from cpr_bench import accounting
from cpr_bench.accounting import ACCOUNTS, Ledger, Window, between, table
from cpr_bench.breakdown import _accounts
from cpr_devtools.pki import ensure_dev_pki
from gateway import tls
from gateway.model import Operation
from gateway.observe.events import ConnectionOpened, EventBus, RequestCompleted
from memory_tls import pump_handshake


def _spin(n: int) -> int:
    return sum(i * i for i in range(n))


def test_every_account_names_a_function_of_this_tree() -> None:
    missing = [path for path in (*ACCOUNTS, accounting.EMIT) if accounting._resolve(path) is None]
    assert missing == []


def test_a_function_is_accounted_per_call_and_answers_as_before() -> None:
    ledger = Ledger()
    spin = ledger.wrap(_spin, "spin")
    assert [spin(20_000), spin(0)] == [_spin(20_000), 0]
    ns, calls = ledger.accounts["spin"]
    assert calls == 2 and ns > 0


def test_an_exception_passes_through_and_the_call_is_still_counted() -> None:
    ledger = Ledger()

    def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        ledger.wrap(fails, "fails")()
    assert ledger.accounts["fails"][1] == 1


async def test_a_coroutine_is_accounted_per_step_awaited_or_as_a_task() -> None:
    ledger = Ledger()

    async def steps(n: int) -> int:
        total = _spin(n)
        await asyncio.sleep(0.01)  # not accounted: the coroutine is suspended
        return total + _spin(n)

    accounted = ledger.wrap(steps, "steps")
    assert await accounted(10_000) == 2 * _spin(10_000)
    assert await asyncio.get_running_loop().create_task(accounted(10)) == 2 * _spin(10)
    ns, started = ledger.accounts["steps"]
    assert started == 2
    assert 0 < ns < 10_000_000  # the 10 ms asleep is not in it


async def test_a_coroutine_raising_or_cancelled_keeps_its_meaning() -> None:
    ledger = Ledger()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad")

    async def waits() -> None:
        await asyncio.sleep(10)

    with pytest.raises(ValueError, match="bad"):
        await ledger.wrap(fails, "fails")()
    task = asyncio.get_running_loop().create_task(ledger.wrap(waits, "waits")())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_events_are_accounted_by_type_with_their_subscribers() -> None:
    ledger = Ledger()
    seen: list[object] = []

    class Bus(EventBus):
        pass

    Bus.emit = ledger.wrap_emit(EventBus.emit)  # type: ignore[method-assign,assignment]
    bus = Bus()
    bus.subscribe(seen.append)
    opened = ConnectionOpened("127.0.0.1:1")
    done = RequestCompleted("127.0.0.1:1", Operation.LOOKUP, "all", "mainframe", "00", 0.001)
    for event in (opened, done, done):
        bus.emit(event)
    assert seen == [opened, done, done]
    assert ledger.accounts["event:ConnectionOpened"][1] == 1
    assert ledger.accounts["event:RequestCompleted"][1] == 2


def test_install_replaces_where_defined_and_names_what_is_missing() -> None:
    module = types.ModuleType("accounted_here")

    class Owner:
        def work(self) -> int:
            return _spin(100)

    module.Owner = Owner  # type: ignore[attr-defined]
    sys.modules["accounted_here"] = module
    try:
        ledger = Ledger()
        ledger.install(["accounted_here:Owner.work", "accounted_here:Owner.gone", "nowhere:X.y"])
        assert Owner().work() == _spin(100)
        assert ledger.accounts["Owner.work"][1] == 1
        assert ledger.missing[:2] == ["accounted_here:Owner.gone", "nowhere:X.y"]
    finally:
        del sys.modules["accounted_here"]


def test_tls_objects_calling_c_methods_directly_are_accounted_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gateway.tls's DirectObject binds the C methods on each instance, past the class's
    accounted ones: the accounts follow them there."""
    # Put back at teardown whatever install replaces.
    monkeypatch.setattr(tls.DirectObject, "_create", tls.DirectObject.__dict__["_create"])
    for name in ("do_handshake", "read"):
        monkeypatch.setattr(ssl.SSLObject, name, getattr(ssl.SSLObject, name))
    ledger = Ledger()
    ledger.install(["ssl:SSLObject.do_handshake", "ssl:SSLObject.read"])
    pki = ensure_dev_pki(tmp_path, servers=("emulator",))
    client = tls.client_context(pki.ca_cert)
    server = tls.server_context(pki.cert("emulator"), pki.key("emulator"))
    bios = [ssl.MemoryBIO() for _ in range(4)]
    ours = client.wrap_bio(bios[0], bios[1], server_hostname="localhost")
    theirs = server.wrap_bio(bios[2], bios[3], server_side=True)
    pump_handshake(ours, theirs, bios, rounds=3)
    theirs.write(b"x")
    bios[0].write(bios[3].read())
    assert ours.read(1) == b"x"
    assert ledger.accounts["SSLObject.do_handshake"][1] == 6
    assert ledger.accounts["SSLObject.read"][1] == 1


def test_a_window_is_the_difference_per_lookup(tmp_path: Path) -> None:
    before = {"process_ns": 1_000_000, "accounts": {"a": [1_000, 1]}}
    after = {"process_ns": 5_000_000, "accounts": {"a": [401_000, 5], "b": [200_000, 2]}}
    window = between(before, after, lookups=2)
    assert window.process_us == 2_000
    assert window.accounts == {"a": (2.0, 200.0), "b": (1.0, 100.0)}
    (tmp_path / "7.json").write_text(json.dumps(after))
    assert accounting.read(tmp_path, 7) == after


def test_the_table_puts_the_dearest_first_with_both_trees() -> None:
    ours = [Window(2_000.0, {"cheap": (1.0, 5.0), "dear": (2.0, 300.0)})]
    theirs = [Window(2_500.0, {"dear": (2.0, 400.0)})]
    text = table({"this tree": ours, "against": theirs}, clock_us=1.5)
    rows = text.splitlines()
    assert (
        rows[0] == "| account | this tree: calls, µs per lookup | against: calls, µs per lookup |"
    )
    assert rows[2] == "| **the process, all its CPU** | 2,000 | 2,500 |"
    assert rows[3] == "| `dear` | 2.00 × = 300.0 | 2.00 × = 400.0 |"
    assert rows[4] == "| `cheap` | 1.00 × = 5.0 | – |"
    assert "~1.50 µs" in text


def test_the_clock_cost_is_measured_not_assumed() -> None:
    assert accounting.clock_cost_us(2_000) > 0


def _twice() -> int:
    return len("ab") + _spin(3) + _spin(4)


def test_calls_are_counted_per_function_python_and_c_apart() -> None:
    ledger = Ledger()
    before = ledger.snapshot()
    try:
        ledger.count_calls()
        for _ in range(5):
            _twice()
    finally:
        sys.setprofile(None)
    window = between(before, ledger.snapshot(), lookups=5)
    here = accounting._module_of(__file__)
    assert window.accounts[f"{here}:_twice"][0] == 1
    assert window.accounts[f"{here}:_spin"][0] == 2
    assert window.accounts["C:len"][0] == 1
    assert window.accounts["C:sum"][0] == 2
    text = accounting.calls_table({"this tree": [window], "against": [window]})
    assert f"| `{here}:_spin` | 2.00 | 2.00 |" in text
    assert accounting._module_of(accounting.__file__) == "cpr_bench/accounting.py"
    python = sum(c for label, (c, _us) in window.accounts.items() if not label.startswith("C:"))
    assert f"| **Python** | {python:,.0f} | {python:,.0f} |" in text


def test_a_tree_without_the_call_count_is_not_counted(
    tmp_path: Path,
) -> None:
    module = tmp_path / "src/cpr_bench/accounting.py"
    assert not _accounts(tmp_path, calls=False)
    module.parent.mkdir(parents=True)
    module.write_text("parser.add_argument('--output')\n")
    assert _accounts(tmp_path, calls=False) and not _accounts(tmp_path, calls=True)
    assert _accounts(Path(accounting.__file__).parents[2], calls=True)
