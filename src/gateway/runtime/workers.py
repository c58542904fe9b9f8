"""`cpr-gateway serve --workers N`: N gateway processes sharing one client socket.

One Python process runs on one core; the CPR Direkte hop is mostly TLS handshakes
and byte relaying, so a busy gateway needs more than one. Each worker is a whole
``cpr-gateway serve`` process. The parent binds the client port once and every
worker accepts from that one listening socket (inherited, ``--listen-fd``): one
accept queue, so a new connection waits only while every worker is busy. (With
SO_REUSEPORT, as before, each worker had a queue of its own, and a connection the
kernel hashed to a busy worker waited while another sat idle, which showed in the p99;
docs/benchmarks.md, "Where the time goes, and what was changed": ``serve --workers``.)
Workers share nothing else.

Worker ``i`` serves /metrics, /healthz and /readyz on ``admin.port + i`` (a port
of 0 stays 0: each worker picks a free one), because counters are per process
and a scrape must see each worker. The parent forwards SIGTERM and SIGINT (each
worker drains gracefully) and SIGHUP (each worker reloads its routing file);
when one worker exits, the others are stopped and the parent exits non-zero, so
a supervisor restarts the set as a whole rather than running short-handed.

The parent is deliberately small: no event loop, no gateway code. It validates
the routing file once by running ``check-config --workers N`` as a child (so a
broken file fails once, with its problems, instead of once per worker), then
starts the workers and sleeps until one exits or a signal comes (it does not poll: at
a light load ten wake-ups a second showed in the CPU per lookup). Everything it imported
would stay resident beside the workers' own copies, so it imports neither an event loop
nor the config code
(docs/benchmarks.md, "Memory figures once quoted in code comments"; P6).

Sessions are shared between the workers (gateway.sessions.peers): the parent makes a
private directory (mode 0700, removed when the set stops) and each worker answers its
siblings' session questions on a Unix socket there. A client's logon and its next
lookup usually land on different workers; the second asks the first for the session
when the lookup must carry another side's token (a split, a canary, a shadow).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from gateway.errors import ConfigError
from gateway.runtime.elders import prepare_board

if TYPE_CHECKING:
    from gateway.config.schema import GatewayConfig

#: Signals passed on to every worker: stop gracefully, or reload the routing file.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Each worker bounds its own drain by ``limits.grace_period``; this backstop on top of
#: it covers a worker that hangs anyway, so the set never outlives a stop by much.
STOP_BACKSTOP_S = 15.0
#: How often the parent looks at its workers where it cannot wait on them (a kernel
#: without pidfd_open, before Linux 5.3): how soon it notices one has exited.
_POLL_S = 0.1


#: The longest path a Unix socket can be bound to on Linux (``sun_path`` less its NUL).
MAX_SOCKET_PATH = 107


def socket_path(directory: Path, index: int) -> Path:
    """Where worker ``index`` answers its siblings' session questions (gateway.sessions.peers)."""
    return directory / f"{index}.sock"


def admin_port(config: GatewayConfig, index: int) -> int:
    """Worker ``index``'s admin port: ``admin.port + index``, or 0 when it is 0."""
    base = config.admin.port
    return 0 if base == 0 else base + index


def check_workers(config: GatewayConfig, workers: int) -> None:
    """ConfigError unless ``workers`` processes can share ``config``'s ports."""
    problems = []
    if workers < 1:
        problems.append(f"--workers: must be at least 1, got {workers}")
    if workers > 1 and config.listen.port == 0:
        problems.append("listen.port: --workers needs a fixed port; with 0 each gets its own")
    last = config.admin.port + workers - 1
    if config.admin.port and last > 65535:
        problems.append(f"admin.port: {workers} workers need ports up to {last}")
    if problems:
        raise ConfigError(problems)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


def worker_argv(config_path: Path, index: int, sessions_dir: Path, listen_fd: int) -> list[str]:
    """The command line of worker ``index``: ``cpr-gateway serve`` accepting on the inherited
    socket ``listen_fd`` and sharing, through ``sessions_dir``, its sessions."""
    return _cli(
        "serve", "--config", str(config_path), "--listen-fd", str(listen_fd),
        "--worker-index", str(index), "--sessions-dir", str(sessions_dir),
    )  # fmt: skip


def run_workers(config_path: Path, workers: int) -> int:
    """Run ``workers`` gateway processes until a stop signal or until one of them exits.

    Returns 0 after a requested stop, 1 when a worker exited on its own or the client
    port or the sessions directory cannot be had (said why), and check-config's status
    when the routing file is refused (it printed why).
    """
    check = subprocess.run(
        _cli("check-config", str(config_path), "--workers", str(workers), "--print-listen"),
        stdout=subprocess.PIPE,  # "HOST PORT"; problems go to stderr
        check=False,
    )
    if check.returncode != 0:
        return check.returncode
    host, _, port = check.stdout.decode().strip().rpartition(" ")
    listener = _listening_socket(host, int(port))
    if listener is None:
        return 1
    return _run(config_path, workers, listener)


def _listening_socket(host: str, port: int) -> socket.socket | None:
    """The client port bound and listening, for the workers to inherit; None (and why, on
    stderr) when it cannot be bound. ``host`` is taken at its first address, as a worker
    on its own would listen on every address it has."""
    try:
        family, kind, protocol, _name, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, protocol)
    except OSError as exc:
        print(f"listen: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
        listener.bind(address)
        listener.listen(socket.SOMAXCONN)  # each worker sets limits.max_connections
    except OSError as exc:
        listener.close()
        print(f"listen: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return None
    return listener


def _run(config_path: Path, workers: int, listener: socket.socket) -> int:
    sessions_dir = _sessions_dir(workers)
    if sessions_dir is None:
        listener.close()
        return 1
    processes: list[subprocess.Popen[bytes]] = []
    stopping: list[float] = []  # when a stop began; empty while running

    def forward(signum: int, _frame: FrameType | None) -> None:
        _signal_all(processes, signal.Signals(signum))
        if signum != signal.SIGHUP and not stopping:
            stopping.append(time.monotonic())

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        with listener:  # the workers' copies only: when they stop accepting, it closes
            fd = listener.fileno()
            prepare_board(sessions_dir, workers)
            processes.extend(
                subprocess.Popen(worker_argv(config_path, i, sessions_dir, fd), pass_fds=(fd,))
                for i in range(workers)
            )
        return _supervise(processes, stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # After a stop signal the workers have it already: a second SIGTERM must not
        # cut their drain short. After a crash the others are told here.
        _stop(processes, STOP_BACKSTOP_S, tell=not stopping)
        shutil.rmtree(sessions_dir, ignore_errors=True)


def _sessions_dir(workers: int) -> Path | None:
    """A new private directory for the workers' session sockets; None (and why, on stderr)
    when it cannot be made or its socket paths would be too long to bind."""
    try:
        # Only this user can enter it: the workers pass session tokens through it.
        directory = Path(tempfile.mkdtemp(prefix="cpr-gateway-sessions-"))
    except OSError as exc:
        print(f"sessions directory: cannot make one in {tempfile.gettempdir()}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return None
    longest = len(bytes(socket_path(directory, workers - 1)))
    if longest > MAX_SOCKET_PATH:  # said once here, rather than by every worker at start
        directory.rmdir()
        print(
            f"sessions directory {directory}: its socket paths would be {longest} bytes, "
            f"over the {MAX_SOCKET_PATH} a Unix socket takes; set TMPDIR to a shorter directory",
            file=sys.stderr,
        )
        return None
    return directory


def _supervise(processes: Sequence[subprocess.Popen[bytes]], stopping: list[float]) -> int:
    """Wait for a stop signal (0) or for any worker to exit (1).

    Asleep in ``select`` on each worker's pidfd (readable once it exits) and on the
    signals' wake-up socket (Python's handler runs between bytecodes, so a signal must
    also wake the ``select`` itself: ``signal.set_wakeup_fd``).
    """
    waker, woken = socket.socketpair()
    waker.setblocking(False)
    woken.setblocking(False)
    previous = signal.set_wakeup_fd(waker.fileno(), warn_on_full_buffer=False)
    exits = _exit_fds(processes)
    timeout = None if len(exits) == len(processes) else _POLL_S
    try:
        while not stopping:
            for index, process in enumerate(processes):
                code = process.poll()
                if code is not None:
                    print(
                        f"gateway worker {index} exited with {code}; stopping the others",
                        file=sys.stderr,
                    )
                    return 1
            ready, _, _ = select.select([woken.fileno(), *exits], [], [], timeout)
            if woken.fileno() in ready:
                with contextlib.suppress(BlockingIOError):
                    woken.recv(64)  # the signals' numbers: their handler has run
        return 0
    finally:
        signal.set_wakeup_fd(previous)
        waker.close()
        woken.close()
        for fd in exits:
            os.close(fd)


def _exit_fds(processes: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """A pidfd per worker, readable once it has exited; none where the kernel has no
    pidfd_open (then the workers are polled)."""
    fds: list[int] = []
    try:
        for process in processes:
            fds.append(os.pidfd_open(process.pid))
    except OSError:
        for fd in fds:
            os.close(fd)
        return []
    return fds


def _signal_all(processes: Sequence[subprocess.Popen[bytes]], sig: signal.Signals) -> None:
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)


def _stop(processes: Sequence[subprocess.Popen[bytes]], backstop_s: float, *, tell: bool) -> None:
    """SIGTERM every running worker (if ``tell``), wait for their drains, kill any that
    outlive ``backstop_s``."""
    if tell:
        _signal_all(processes, signal.SIGTERM)
    deadline = time.monotonic() + backstop_s
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
