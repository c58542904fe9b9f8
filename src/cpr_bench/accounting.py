"""A gateway process's CPU, function by function, in place: ``python -m cpr_bench.accounting``.

py-spy's samples (cpr_bench.breakdown) say which stage a lookup's time goes to, and an A/B
of two source trees (``breakdown --against``) says whether a change paid; but on this kind
of machine a window's CPU per lookup moves by a fifth from one window to the next, so
neither resolves a change of a few percent. This reads the thread's CPU clock before and
after each call of a chosen set of the gateway's functions (:data:`ACCOUNTS`), in the
running process at the benchmark's rate: what each costs with the caches as a loaded
process has them, several times its cost in a warm loop.

* A plain function is accounted per call, everything it calls included.
* A coroutine function is accounted per step (from one ``await`` that suspends to the
  next), what runs inline included; the awaits themselves cost it nothing.
* :meth:`EventBus.emit` is accounted per event type (``event:RequestCompleted``), every
  subscriber included; the subscribers are accounted as functions too.
* A function accounted inside another is in both: the figures are inclusive.

``python -m cpr_bench.accounting --output DIR -- serve --config routing.yaml`` runs one
gateway process (not ``serve --workers``: a worker is a new process) with the accounts
installed, and writes ``DIR/<pid>.json`` a few times a second: the process's CPU so far and,
per account, its CPU in ns and its calls. cpr_bench.breakdown ``--account`` reads it before
and after each window. Accounts whose function a source tree does not have (an older one,
with ``--against``) are left out and named in the file.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from gateway.cli import main as gateway_main

#: What is accounted, as ``module:Owner.attribute``: the legacy route's request path, from
#: accept to close, and the TLS calls it makes through Python.
ACCOUNTS = (
    "gateway.server.admission:AdmittingServer._accept_queued",
    "gateway.server.admission:AdmittingServer._admit",
    "gateway.server.admission:AdmittingServer._let_in",
    "gateway.server.admission:AdmittingServer._handshake",
    "gateway.runtime.tasks:TaskSet.spawn",
    "socket:socket.accept",
    "gateway.server.tcp:_Client.admit",
    "gateway.server.connection:OneRequest.connection_made",
    "gateway.server.connection:OneRequest.data_received",
    "gateway.server.connection:OneRequest._answer",
    "gateway.server.connection:OneRequest._close",
    "gateway.server.tcp:_Client.connection_lost",
    "gateway.server.tcp:_Client.answer",
    "gateway.codec.framing:RequestFramer.next_request",
    "gateway.dispatch:Dispatcher.handle",
    "gateway.dispatch:Dispatcher._brokered",
    "gateway.dispatch:Dispatcher._leased",
    "gateway.routing:RouteTable.route",
    "gateway.backends.legacy:LegacyBackend.call",
    "gateway.backends.legacy:LegacyBackend._connect",
    "gateway.backends.legacy:_Exchange.send",
    "gateway.backends.legacy:_Exchange.close",
    "gateway.backends.legacy:_Exchange.data_received",
    "gateway.backends.legacy:_Exchange.eof_received",
    "gateway.backends.legacy:_Exchange.connection_lost",
    "gateway.observe.metrics:Metrics.on_event",
    "gateway.app:Gateway._log",
    "gateway.app:Gateway._resume_sampling",
    "ssl:SSLContext.wrap_bio",
    "ssl:SSLObject.do_handshake",
    "ssl:SSLObject.read",
    "ssl:SSLObject.write",
    "ssl:SSLObject.unwrap",
    "ssl:SSLObject.getpeercert",
)
#: Accounted per event type, as ``event:<type>``.
EMIT = "gateway.observe.events:EventBus.emit"
#: Seconds between two writes of the figures.
WRITE_INTERVAL_S = 0.2

_THREAD = time.CLOCK_THREAD_CPUTIME_ID
_clock = time.clock_gettime_ns


class Ledger:
    """Per account: CPU in ns and calls (or coroutines started), as ``[ns, calls]``."""

    def __init__(self) -> None:
        self.accounts: dict[str, list[int]] = {}
        #: Accounts whose function this source tree does not have.
        self.missing: list[str] = []
        #: With :meth:`count_calls`: calls per Python code object, and per C function name.
        self._counted: tuple[dict[CodeType, int], dict[str, int]] | None = None

    def account(self, label: str) -> list[int]:
        return self.accounts.setdefault(label, [0, 0])

    def wrap(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        """``function`` accounted under ``label``: per call, or per step of its coroutine."""
        entry = self.account(label)
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            def started(*args: Any, **kwargs: Any) -> _Stepped:
                entry[1] += 1
                return _Stepped(function(*args, **kwargs), entry)

            return started

        return _timed(function, entry)

    def wrap_emit(self, emit: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        """EventBus.emit accounted per event type."""
        accounts = self.accounts

        @functools.wraps(emit)
        def emitted(bus: Any, event: Any) -> None:
            label = f"event:{type(event).__name__}"
            entry = accounts.get(label) or self.account(label)
            began = _clock(_THREAD)
            try:
                emit(bus, event)
            finally:
                entry[0] += _clock(_THREAD) - began
                entry[1] += 1

        return emitted

    def install(self, accounts: Sequence[str] = ACCOUNTS) -> None:
        """Replace each accounted function where it is defined (before the gateway is built,
        so that every bound method taken later is the accounted one)."""
        for path in accounts:
            found = _resolve(path)
            if found is None:
                self.missing.append(path)
                continue
            owner, name = found
            setattr(owner, name, self.wrap(getattr(owner, name), path.partition(":")[2]))
        found = _resolve(EMIT)
        if found is None:
            self.missing.append(EMIT)
        else:
            owner, name = found
            setattr(owner, name, self.wrap_emit(getattr(owner, name)))
        tls_methods = [path.rpartition(".")[2] for path in accounts if path.startswith(_TLS)]
        if tls_methods:
            self._install_direct(tls_methods)

    def _install_direct(self, methods: Sequence[str]) -> None:
        """A tree whose TLS objects call the C object's methods directly (gateway.tls's
        DirectObject binds them on each instance, past the class's accounted ones): those
        of ``methods`` it binds accounted under the same labels, as each object is made."""
        found = _resolve("gateway.tls:DirectObject._create")
        if found is None:
            return
        owner, _name = found
        create = owner.__dict__["_create"].__func__
        entries = {name: self.account(f"SSLObject.{name}") for name in methods}

        def accounted_create(cls: type, *args: Any, **kwargs: Any) -> Any:
            connection = create(cls, *args, **kwargs)
            own = connection.__dict__
            for name, entry in entries.items():
                if name in own:
                    own[name] = _timed(own[name], entry, wraps=False)
            return connection

        owner._create = classmethod(accounted_create)

    def count_calls(self) -> None:
        """Count every call the calling thread makes from now on, Python functions and C
        ones alike (``sys.setprofile``), instead of timing chosen ones: a figure that does
        not move with the machine, so a change of a few calls per lookup shows. Each shows
        as an account with calls and no CPU: ``module:qualname``, or ``C:qualname``."""
        python: dict[CodeType, int] = {}
        native: dict[str, int] = {}
        self._counted = (python, native)

        def counted(frame: FrameType, event: str, arg: Any) -> None:
            if event == "call":
                code = frame.f_code
                python[code] = python.get(code, 0) + 1
            elif event == "c_call":
                label = getattr(arg, "__qualname__", None) or type(arg).__qualname__
                native[label] = native.get(label, 0) + 1

        sys.setprofile(counted)

    def snapshot(self) -> dict[str, Any]:
        """The figures so far: the process's CPU in ns, and each account's [ns, calls]."""
        accounts = {label: list(entry) for label, entry in list(self.accounts.items())}
        if self._counted is not None:
            python, native = self._counted
            for code, calls in list(python.items()):
                label = f"{_module_of(code.co_filename)}:{code.co_qualname}"
                accounts[label] = [0, accounts.get(label, [0, 0])[1] + calls]
            accounts.update({f"C:{label}": [0, calls] for label, calls in list(native.items())})
        return {
            "pid": os.getpid(),
            "process_ns": time.process_time_ns(),
            "accounts": accounts,
            "missing": list(self.missing),
        }


#: The prefix of the TLS object's accounts in :data:`ACCOUNTS`.
_TLS = "ssl:SSLObject."


def _timed(
    function: Callable[..., Any], entry: list[int], *, wraps: bool = True
) -> Callable[..., Any]:
    """``function`` with its calls and CPU added to ``entry``; without ``wraps`` it does not
    take the function's name and docstring (``functools.wraps`` costs several µs, too much
    for a wrapper made per connection)."""

    def called(*args: Any, **kwargs: Any) -> Any:
        began = _clock(_THREAD)
        try:
            return function(*args, **kwargs)
        finally:
            entry[0] += _clock(_THREAD) - began
            entry[1] += 1

    return functools.wraps(function)(called) if wraps else called


class _Stepped(Coroutine[Any, Any, Any]):
    """A coroutine whose every step is accounted (a Coroutine, so create_task takes it)."""

    __slots__ = ("_coroutine", "_entry")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], entry: list[int]) -> None:
        self._coroutine = coroutine
        self._entry = entry

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> _Stepped:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        began = _clock(_THREAD)
        try:
            return self._coroutine.send(value)
        finally:
            self._entry[0] += _clock(_THREAD) - began

    def throw(self, *args: Any) -> Any:
        began = _clock(_THREAD)
        try:
            return self._coroutine.throw(*args)
        finally:
            self._entry[0] += _clock(_THREAD) - began

    def close(self) -> None:
        self._coroutine.close()


def _resolve(path: str) -> tuple[Any, str] | None:
    """(owner, attribute name) of ``module:Owner.attribute``; None when it does not exist."""
    module_name, _, dotted = path.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    *owners, name = dotted.split(".")
    for part in owners:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return (owner, name) if name in vars(owner) else None


@dataclass(frozen=True, slots=True)
class Window:
    """What a process spent between two snapshots, per lookup."""

    process_us: float
    #: label → (calls per lookup, µs per lookup)
    accounts: dict[str, tuple[float, float]]


def between(before: dict[str, Any], after: dict[str, Any], lookups: int) -> Window:
    """Per-lookup figures of what happened between two snapshots of one process."""
    n = max(lookups, 1)
    old = before["accounts"]
    accounts = {}
    for label, (ns, calls) in after["accounts"].items():
        was_ns, was_calls = old.get(label, (0, 0))
        if calls > was_calls:
            accounts[label] = ((calls - was_calls) / n, (ns - was_ns) / n / 1000)
    return Window((after["process_ns"] - before["process_ns"]) / n / 1000, accounts)


def table(accounted: dict[str, list[Window]], clock_us: float) -> str:
    """Markdown: per account, calls and µs per lookup of each gateway (the median of its
    windows), the dearest first; the process's whole CPU per lookup on top."""
    names = list(accounted)
    first = accounted[names[0]]
    labels = {label for windows in accounted.values() for w in windows for label in w.accounts}

    def figures(name: str, label: str) -> tuple[float, float]:
        windows = accounted[name]
        calls = median([w.accounts.get(label, (0.0, 0.0))[0] for w in windows])
        return calls, median([w.accounts.get(label, (0.0, 0.0))[1] for w in windows])

    head = "| account | " + " | ".join(f"{n}: calls, µs per lookup" for n in names) + " |"
    rows = [head, "|---|" + "---|" * len(names)]
    whole = " | ".join(f"{median([w.process_us for w in accounted[n]]):,.0f}" for n in names)
    rows.append(f"| **the process, all its CPU** | {whole} |")
    for label in sorted(
        labels, key=lambda label: -median([w.accounts.get(label, (0, 0))[1] for w in first])
    ):
        cells = []
        for name in names:
            calls, us = figures(name, label)
            cells.append(f"{calls:.2f} × = {us:,.1f}" if calls else "–")
        rows.append(f"| `{label}` | " + " | ".join(cells) + " |")
    note = (
        f"Medians of {len(first)} window(s). Inclusive: an account called inside another is in"
        f" both. Each accounted call includes ~{clock_us:.2f} µs of the accounting itself"
        " (two reads of the thread's CPU clock)."
    )
    return "\n".join([*rows, "", note])


def calls_table(counted: dict[str, list[Window]], rows: int = 60) -> str:
    """Markdown: calls per lookup of each gateway (the median of its windows), in all and
    of Python functions and C ones, then the ``rows`` most called, the most first."""
    names = list(counted)

    def calls(name: str, label: str) -> float:
        return median([w.accounts.get(label, (0.0, 0.0))[0] for w in counted[name]])

    def total(name: str, native: bool | None) -> float:
        def of(window: Window) -> float:
            figures = window.accounts.items()
            return sum(c for label, (c, _us) in figures if native in (None, label[:2] == "C:"))

        return median([of(w) for w in counted[name]])

    labels = {label for windows in counted.values() for w in windows for label in w.accounts}
    head = "| calls per lookup | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for title, native in (("**all**", None), ("**Python**", False), ("**C**", True)):
        lines.append(f"| {title} | " + " | ".join(f"{total(n, native):,.0f}" for n in names) + " |")
    for label in sorted(labels, key=lambda label: (-calls(names[0], label), label))[:rows]:
        cells = (f"{c:.2f}" if c else "–" for c in (calls(n, label) for n in names))
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    note = (
        f"Medians of {len(counted[names[0]])} window(s); every call the process's main thread"
        " made (sys.setprofile), per lookup, while the load ran."
    )
    return "\n".join([*lines, "", note])


def median(values: Sequence[float]) -> float:
    """The median of windows' figures (the upper one of an even count); 0 without any."""
    return sorted(values)[len(values) // 2] if values else 0.0


def _module_of(filename: str) -> str:
    """A short name for the file a function is defined in: from ``src/``, ``site-packages/``
    or the standard library's directory on."""
    for marker in (
        "/src/",
        "/site-packages/",
        f"/python{sys.version_info[0]}.{sys.version_info[1]}/",
    ):
        _, found, rest = filename.rpartition(marker)
        if found:
            return rest
    return filename


def read(directory: Path, pid: int) -> dict[str, Any]:
    """The latest figures a process wrote."""
    data: dict[str, Any] = json.loads((directory / f"{pid}.json").read_text())
    return data


def clock_cost_us(calls: int = 20_000) -> float:
    """µs one accounted call adds (two reads of the thread's CPU clock and the bookkeeping),
    measured on an empty function: what each figure includes of the accounting itself."""
    accounted = Ledger().wrap(_nothing, "nothing")
    began = time.perf_counter_ns()
    for _ in range(calls):
        accounted()
    plain = time.perf_counter_ns()
    for _ in range(calls):
        _nothing()
    return ((plain - began) - (time.perf_counter_ns() - plain)) / calls / 1000


def _nothing() -> None:
    pass


def _write_forever(ledger: Ledger, path: Path) -> None:
    partial = path.with_suffix(".partial")
    while True:
        partial.write_text(json.dumps(ledger.snapshot()))
        partial.replace(path)
        time.sleep(WRITE_INTERVAL_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.accounting", description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="where <pid>.json goes")
    parser.add_argument(
        "--calls", action="store_true", help="count every call instead (Ledger.count_calls)"
    )
    parser.add_argument("gateway", nargs=argparse.REMAINDER, help="cpr-gateway's arguments")
    args = parser.parse_args(argv)
    command = args.gateway[1:] if args.gateway[:1] == ["--"] else args.gateway
    ledger = Ledger()
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{os.getpid()}.json"
    threading.Thread(target=_write_forever, args=(ledger, path), daemon=True).start()
    if args.calls:
        ledger.count_calls()  # this thread's: the event loop's (the writer is not counted)
    else:
        ledger.install()  # before the gateway is built: every bound method is an accounted one
    return gateway_main(command)


if __name__ == "__main__":
    raise SystemExit(main())
