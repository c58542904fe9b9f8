"""The console script as operators and scripts use it: exit codes and output."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_config_accepts_the_shipped_routing_yaml() -> None:
    """The top-level routing.yaml is valid as shipped."""
    result = _cli("check-config", str(ROOT / "routing.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_config_names_the_yaml_path_of_each_problem(tmp_path: Path) -> None:
    """A broken file exits non-zero with one path-qualified line per problem."""
    broken = (ROOT / "routing.yaml").read_text().replace("backend: mainframe", "backend: nowhere")
    path = tmp_path / "routing.yaml"
    path.write_text(broken)
    result = _cli("check-config", str(path))
    assert result.returncode == 1
    assert "routes[1].backend" in result.stderr
    assert "nowhere" in result.stderr


def test_check_config_shows_each_canary_plan_in_one_line(tmp_path: Path) -> None:
    """A route with a step plan gets one line: its primary, candidate, steps and gates."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\n"
        "listen: {host: 127.0.0.1, port: 0, tls: null}\n"
        "backends:\n"
        '  mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}\n'
        '  persons-v2: {kind: legacy, address: "127.0.0.1:5002", tls: null}\n'
        "routes:\n"
        "  - {name: lookups, match: {operation: [lookup]}, backend: mainframe, deadline: 2s,\n"
        "     shadow: [{backend: persons-v2}],\n"
        "     canary: {candidate: persons-v2, steps: [0, 5, 100]}}\n"
        "  - {name: rest, match: {}, backend: mainframe, deadline: 5s}\n"
    )
    result = _cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "canary lookups: mainframe → persons-v2 by pnr, steps 0/5/100%, each at least 10m and "
        "500 requests, judged every 30s; gates: verdict clean, failures at most 0.5 points above "
        "the primary's, p99 at most 1.5x; a failed gate rolls back to step 0 (0%); a failed "
        "read is asked of the primary, up to 10% of the candidate's reads"
    ]


def test_check_config_workers_needs_a_fixed_client_port(tmp_path: Path) -> None:
    """`--workers N` also checks that N `serve` workers can share the file's ports."""
    shipped = (ROOT / "routing.yaml").read_text()
    assert "port: 5000" in shipped
    path = tmp_path / "routing.yaml"
    path.write_text(shipped.replace("port: 5000", "port: 0"))
    assert _cli("check-config", str(path)).returncode == 0
    result = _cli("check-config", str(path), "--workers", "2")
    assert result.returncode == 1
    assert "listen.port: --workers needs a fixed port" in result.stderr


def test_an_unknown_event_loop_is_refused_in_one_line() -> None:
    """A misspelt CPR_GATEWAY_LOOP stops any command that runs a loop, with the reason."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "lookup", "--pnr", "0101010000", "--port", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "CPR_GATEWAY_LOOP": "trio"},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "cpr-gateway: CPR_GATEWAY_LOOP='trio': expected one of uvloop, asyncio\n"
    )


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    """`cpr-gateway data pnrs | head -1`: no traceback when head stops reading."""
    register = tmp_path / "register.sqlite"
    assert _cli("data", "generate", "--register", str(register), "--count", "8000").returncode == 0
    # 8,000 lines are 88 KB, more than a pipe holds: the writer is still writing when head
    # exits, so the pipe really breaks.
    command = (
        f"{sys.executable} -m gateway.cli data pnrs --register {register} --limit 8000 | head -1"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert len(result.stdout.split()) == 1
    assert result.stderr == ""
    assert result.returncode == 141


def test_data_generate_then_pnrs_by_status(tmp_path: Path) -> None:
    """`data pnrs --status 80` prints only emigrated persons, one PNR per line."""
    register = tmp_path / "register.sqlite"
    generated = _cli("data", "generate", "--register", str(register), "--count", "2000")
    assert generated.returncode == 0, generated.stderr
    listed = _cli("data", "pnrs", "--register", str(register), "--limit", "5", "--status", "80")
    assert listed.returncode == 0, listed.stderr
    pnrs = listed.stdout.split()
    assert len(pnrs) == 5
    assert all(len(p) == 10 and p.isdigit() for p in pnrs)

    from cpr_mainframe.register.store import Register

    store = Register.open(register)
    try:
        assert all(store.get(p) is not None for p in pnrs)
        assert set(pnrs) <= set(store.pnrs(status="80"))
    finally:
        store.close()


def test_emulator_with_a_broken_config_exits_with_path_qualified_errors(tmp_path: Path) -> None:
    """A bad emulator.yaml is refused at start with the YAML path, not a traceback."""
    broken = (ROOT / "emulator.yaml").read_text().replace("regions: 4", "regions: -1")
    path = tmp_path / "emulator.yaml"
    path.write_text(broken)
    result = _cli("emulator", "--config", str(path))
    assert result.returncode == 1
    assert "regions" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_against_reports_what_moves(tmp_path: Path) -> None:
    """--against names each operation that moves, to which backend and by how much, and a
    canary plan's keys that change."""
    shipped = (ROOT / "routing.yaml").read_text()
    current = tmp_path / "current.yaml"
    current.write_text(shipped)
    replanned = tmp_path / "replanned.yaml"
    replanned.write_text(shipped.replace("steps: [0, 10, 50, 100]", "steps: [0, 5, 25, 100]"))
    result = _cli("check-config", str(replanned), "--against", str(current))
    assert result.returncode == 0, result.stderr
    assert "route lookups: canary steps 0/10/50/100% → 0/5/25/100%" in result.stdout
    plan = shipped[shipped.index("    canary:\n") : shipped.index("  - name: all-legacy")]
    split = "    split: {key: pnr, backends: {mainframe: 90, persons-v2: 10}}\n    deadline: 2s"
    by_hand = tmp_path / "by-hand.yaml"
    by_hand.write_text(
        shipped.replace(plan, "").replace("    backend: mainframe\n    deadline: 2s", split, 1)
    )
    result = _cli("check-config", str(by_hand), "--against", str(current))
    assert result.returncode == 0, result.stderr
    assert "lookup: mainframe 100% → mainframe 90%, persons-v2 10%" in result.stdout
    assert "route lookups: canary removed" in result.stdout
    same = _cli("check-config", str(current), "--against", str(current))
    assert "no changes" in same.stdout


def test_help_lists_the_operator_commands_first_and_version_answers() -> None:
    """`--help` names serve, check-config and diff before the development stack's commands;
    `--version` prints the installed distribution's version."""
    listed = _cli("--help").stdout
    order = [listed.index(f"    {name}") for name in ("serve", "check-config", "diff", "up")]
    assert order == sorted(order)
    version = _cli("--version")
    assert version.returncode == 0
    assert version.stdout.split() == ["cpr-gateway", importlib.metadata.version("cpr-gateway")]


def test_a_development_command_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    """Where the simulators' dependencies are not installed (here: cryptography hidden from
    the interpreter), `cpr-gateway certs` says which extra installs them and exits 2."""
    hide = tmp_path / "hide" / "cryptography"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ModuleNotFoundError(name='cryptography')\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "certs", "--dir", str(tmp_path / "tls")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(hide.parent)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "install 'cpr-gateway[simulators]'" in result.stderr
    assert not (tmp_path / "tls").exists()
