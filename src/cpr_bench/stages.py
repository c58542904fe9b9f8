"""A sampled stack's stage in a lookup's life, for cpr_bench.breakdown.

py-spy's raw output is one line per distinct stack, ``frame;frame;… count``, outermost
frame first. Each is put in one stage: OpenSSL's work wherever it is called from (a
handshake from accept or from the upstream connect, a record from a write), else the
innermost frame of the gateway's own code (a log line written from dispatch is telemetry,
not dispatch), else the event loop's own accept or close, else the loop and interpreter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

#: Stages whose work is OpenSSL's, found anywhere in a sampled stack (they are called from
#: every other stage: a handshake from accept or from the upstream connect, a record from
#: a write): the floor that any TLS proxy pays.
_TLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("TLS handshakes (both hops)", ("do_handshake", "wrap_bio", "SSLObject._create",
                                    "encodings/idna.py")),
    ("TLS records and shutdown", ("SSLProtocol__do_read", "SSLProtocol__write_appdata",
                                  "SSLProtocol__do_shutdown", "SSLProtocol__start_shutdown",
                                  "_ssl__SSLSocket_read", "_ssl__SSLSocket_write",
                                  "SSLObject.read", "SSLObject.write", "SSLObject.unwrap")),
)  # fmt: skip
#: The gateway's own stages by where their code is: a sample belongs to the innermost frame
#: of any of these (a log line written from dispatch is telemetry, not dispatch).
_CODE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accept and admission", ("gateway/server/admission.py", "gateway/server/turns.py",
                              "gateway/server/proxy_gate.py", "gateway/runtime/pressure.py")),
    ("framing and codec", ("gateway/codec/",)),
    ("routing", ("gateway/routing.py", "gateway/canary/")),
    ("session", ("gateway/sessions/",)),
    ("upstream connect and relay", ("gateway/backends/",)),
    ("telemetry", ("gateway/observe/", "gateway/audit/", "prometheus_client/", "structlog/")),
    ("dispatch", ("gateway/dispatch.py", "gateway/app.py")),
    ("connection: read, answer, close", ("gateway/server/connection.py",
                                         "gateway/server/tcp.py")),
)  # fmt: skip
#: Native frames of the event loop's own accept and close, for samples with no gateway frame.
_LOOP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accept and admission", ("uv__server_io",)),
    ("connection: read, answer, close", ("uv__stream_close", "uv_close", "_call_connection_lost",
                                         "uv__finish_close")),
)  # fmt: skip
GC = "garbage collection"
OTHER = "event loop and interpreter"
#: A sample whose innermost frame is one of these was waiting for work, not working.
_IDLE_LEAVES = ("epoll_wait", "epoll_pwait")
IDLE = "idle"
#: Every stage in the order of a lookup's life (the table's rows).
STAGES: tuple[str, ...] = (
    "accept and admission",
    "TLS handshakes (both hops)",
    "framing and codec",
    "routing",
    "session",
    "dispatch",
    "upstream connect and relay",
    "TLS records and shutdown",
    "connection: read, answer, close",
    "telemetry",
    GC,
    OTHER,
)


def stage_of(stack: str) -> str:
    """The stage a sampled stack belongs to (py-spy's raw frames, outermost first, joined
    by ``;``): OpenSSL's work wherever it is called from, else the innermost frame of the
    gateway's own code, else the event loop's accept or close, else the loop itself."""
    frames = stack.split(";")
    if frames[-1].startswith(_IDLE_LEAVES):
        return IDLE
    if "collect_generations" in stack or "gc_collect" in stack:
        return GC
    for stage, patterns in _TLS:
        if any(pattern in stack for pattern in patterns):
            return stage
    for frame in reversed(frames):
        for stage, patterns in _CODE:
            if any(pattern in frame for pattern in patterns):
                return stage
    for stage, patterns in _LOOP:
        if any(pattern in stack for pattern in patterns):
            return stage
    return OTHER


def parse_raw(lines: Iterable[str]) -> Counter[str]:
    """Samples per stage from py-spy's raw output (``frame;frame;… count`` per line)."""
    samples: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            samples[stage_of(stack)] += int(count)
    return samples


def top_frames(lines: Iterable[str], per_stage: int = 8) -> str:
    """Where each stage's samples are, by the innermost Python frame of the stack
    (``function (file:line)``), most sampled first: the list to start tuning from."""
    by_stage: dict[str, Counter[str]] = {}
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not (stack and count.isdigit()):
            continue
        frames = stack.split(";")
        python = [f for f in frames if ".py:" in f]
        where = python[-1] if python else frames[-1]
        by_stage.setdefault(stage_of(stack), Counter())[where] += int(count)
    out = []
    for stage in (*STAGES, IDLE):
        counts = by_stage.get(stage, Counter())
        out.append(f"{stage}: {sum(counts.values())} samples")
        out += [f"  {n:6d}  {where}" for where, n in counts.most_common(per_stage)]
    return "\n".join(out) + "\n"
