"""`python -m cpr_bench --smoke`: the benchmark runs end to end and reports in shape.

Checks that it works, never how fast: a second of tiny load against the
emulator directly and through the gateway's legacy route, in every mode, with
real processes on loopback. HAProxy and the gRPC services are not needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cpr_bench.grpc_floor import measure as measure_grpc_floor
from cpr_bench.scenarios import SMOKE
from cpr_bench.session_peers import measure as measure_session_peers


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    var = tmp_path_factory.mktemp("var")
    # Relative, as `make bench` passes it: the servers' configs must not read it from elsewhere.
    result = subprocess.run(
        [sys.executable, "-m", "cpr_bench", "--smoke", "--var", var.name],
        cwd=var.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return var / "bench", result.stdout


def _report(bench: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((bench / "latest.json").read_text())
    return report


def _rows(bench: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["phase"], r["scenario"]): r for r in _report(bench)["results"]}


def test_every_phase_and_scenario_of_the_smoke_plan_is_reported(run: tuple[Path, str]) -> None:
    """One row per (phase, scenario): open and closed loop on both paths, hold on the gateway."""
    assert set(_rows(run[0])) == {
        ("smoke-open", "direct-tls"),
        ("smoke-open", "gateway-legacy-tls"),
        ("smoke-closed", "direct-tls"),
        ("smoke-closed", "gateway-legacy-tls"),
        ("smoke-hold", "gateway-legacy-tls"),
    }


def test_no_request_failed(run: tuple[Path, str]) -> None:
    """Every lookup of the smoke run got a good answer (FEJLNR 00, true length)."""
    for key, row in _rows(run[0]).items():
        assert row["errors"] == {}, key
        assert row["failures"] == [], key
        assert row["ok"] > 0, key


def test_rows_carry_latency_cpu_memory_and_handshakes(run: tuple[Path, str]) -> None:
    """Percentiles, the hop's CPU and peak memory (gateway only), TLS handshakes per second."""
    rows = _rows(run[0])
    for (_phase, scenario), row in rows.items():
        latency = row["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert row["behind_cpu_ms"] > 0
        assert row["generator_cpu_ms"] > 0
        if scenario == "direct-tls":
            assert row["hop_cpu_ms"] is None
        else:
            assert row["hop_cpu_ms"] > 0
            assert row["hop_rss_peak_mb"] > 0
    assert rows[("smoke-open", "gateway-legacy-tls")]["tls_handshakes_per_s"] > 0
    hold = rows[("smoke-hold", "gateway-legacy-tls")]
    assert hold["held"] == SMOKE.hold
    assert hold["rss_held_mb"] > 0


def test_the_report_describes_the_machine_and_every_target(run: tuple[Path, str]) -> None:
    """nproc, CPU model, memory and Python version; every target present (not measured here)."""
    report = _report(run[0])
    assert {"nproc", "cpu", "memory_gib", "python"} <= set(report["machine"])
    assert [t["key"] for t in report["targets"]] == [
        "P1",
        "P1s",
        "P2",
        "P3",
        "P4",
        "P5",
        "P6",
        "S1",
    ]


def test_the_markdown_table_is_written_and_printed(run: tuple[Path, str]) -> None:
    """The same markdown goes to latest.md and to stdout, with a table per phase."""
    bench, stdout = run
    markdown = (bench / "latest.md").read_text()
    assert markdown in stdout
    for phase in ("smoke-open", "smoke-closed", "smoke-hold"):
        assert f"#### {phase}" in markdown
    assert f"| gateway-legacy-tls | {SMOKE.tls_rate:g}/s offered |" in markdown


def test_configs_and_logs_of_the_run_are_kept(run: tuple[Path, str]) -> None:
    """The run directory holds each server's config and log, to inspect or rerun by hand."""
    (run_dir,) = run[0].glob("run-*")
    names = {p.name for p in run_dir.iterdir()}
    assert {"emulator-tls.yaml", "emulator-tls.log"} <= names
    assert {"gateway-legacy-tls.yaml", "gateway-legacy-tls.log"} <= names


def test_the_session_peer_benchmark_fetches_every_session_from_a_sibling_process() -> None:
    """`python -m cpr_bench.session_peers`, tiny: each session comes back from a real
    sibling process over its Unix socket (it raises if one does not); figures, not speed."""
    figures = measure_session_peers(20)
    assert figures.questions == 20
    assert 0 < figures.p50_us <= figures.p99_us
    assert "20 sessions fetched from a sibling" in str(figures)


def test_the_grpc_floor_benchmark_makes_its_calls_against_a_real_server_process() -> None:
    """`python -m cpr_bench.grpc_floor`, tiny: real calls to a real grpc.aio server in
    another process, each side's CPU read from /proc; figures, not speed."""
    figures = measure_grpc_floor(200, concurrency=4)
    assert figures.calls == 200
    assert figures.per_second > 0 and figures.client_us > 0 and figures.server_us >= 0
    assert "200 empty unary gRPC calls" in str(figures)


def test_the_grpc_floor_benchmark_also_measures_messages_on_open_streams() -> None:
    """``--stream``: the same exchange as messages on open bidirectional streams."""
    figures = measure_grpc_floor(200, concurrency=4, stream=True)
    assert figures.calls == 200 and figures.stream
    assert figures.per_second > 0 and figures.client_us > 0 and figures.server_us >= 0
    assert "200 messages each way on open gRPC streams" in str(figures)
