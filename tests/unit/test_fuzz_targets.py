"""The fuzz targets (docs/fuzzing.md): a short coverage-guided run of each under libFuzzer
inside the suite (``make fuzz`` runs 10**6 executions), their seeds, that a crash and a hang end
a run as failures with the input kept, and the inputs fuzzing found, kept as reproducers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cpr_devtools.fuzz import seeds, targets
from cpr_devtools.fuzz.run import SPECS, Outcome, Spec, run_target
from cpr_devtools.fuzz.targets import TARGETS, Target, proxy_header, request_framer
from gateway.codec import framing
from gateway.codec.proxy_protocol import ProxyHeaderReader
from gateway.config import load_routing
from gateway.errors import ConfigError, FramingError

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: A few thousand executions each (the loader's are slower: a YAML document each).
SHORT = {"framer": 3000, "answers": 3000, "routing": 500, "proxy": 3000}


@pytest.mark.parametrize("name", list(SPECS))
def test_a_short_run_of_each_target_ends_without_a_crash_or_a_hang(
    name: str, tmp_path: Path
) -> None:
    """Each target, coverage-guided from its seeds: every execution done, none failed."""
    result = run_target(name, SHORT[name], tmp_path, REPO)
    assert (result.outcome, result.executions) == (Outcome.OK, SHORT[name]), result.detail
    assert result.coverage > 0


@pytest.mark.parametrize("name", list(SPECS))
def test_every_seed_keeps_the_promise_its_target_checks(name: str) -> None:
    """Real records pass their target as they are: a failure in a long run is the mutation's."""
    target = TARGETS[name]()
    found = SPECS[name].seeds(REPO)
    assert found
    for seed in found:
        target(seed)


def crashing() -> Target:
    """A target that lets an exception escape for inputs starting with ``C``."""

    def one(data: bytes) -> None:
        if data.startswith(b"C"):
            raise ValueError("an exception a parser let escape")

    return one


def hanging() -> Target:
    """A target that never returns for inputs starting with ``H``."""

    def one(data: bytes) -> None:
        if data.startswith(b"H"):
            time.sleep(3600)

    return one


@pytest.mark.parametrize(
    ("maker", "first", "outcome"),
    [("crashing", b"C", Outcome.CRASH), ("hanging", b"H", Outcome.HANG)],
)
def test_a_crash_or_a_hang_fails_the_run_and_keeps_its_input(
    maker: str, first: bytes, outcome: Outcome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An escaped exception is a crash; a call past the per-execution limit is a hang."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    spec = Spec(16, 100, lambda _repo: [first + b"-seed"])
    result = run_target(f"test_fuzz_targets:{maker}", 100, tmp_path, REPO, spec)
    assert result.outcome is outcome, result.detail
    assert result.artifact is not None
    assert result.artifact.read_bytes().startswith(first)


def test_the_framer_target_catches_a_framer_that_frames_control_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not vacuous: with the printable check broken (a fault injected), a record with a
    control byte escapes the framer as an error that is not a FramingError."""
    monkeypatch.setattr(framing, "is_printable_latin1", lambda _data: True)
    logon = seeds.requests()[0][1:]
    with pytest.raises(Exception) as caught:
        request_framer(b"\x00" + logon[:20] + b"\x07" + logon[21:])
    assert not isinstance(caught.value, FramingError)


class _Greedy(ProxyHeaderReader):
    @property
    def missing(self) -> int:
        return super().missing + 1


def test_the_proxy_target_catches_a_reader_that_asks_past_the_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not vacuous: a reader asking for one byte too many (a fault injected) fails the target."""
    monkeypatch.setattr(targets, "ProxyHeaderReader", _Greedy)
    with pytest.raises(AssertionError):
        proxy_header(seeds.proxy_headers()[0])


# Inputs fuzzing found, kept as reproducers (both fixed in gateway/config/reader.py).


def test_a_mapping_used_as_a_key_is_a_config_error(tmp_path: Path) -> None:
    """``{{}}``: PyYAML's unhashable-key refusal, not a TypeError from the duplicate-key check."""
    path = tmp_path / "routing.yaml"
    path.write_text("{{}}\n")
    with pytest.raises(ConfigError, match="unhashable key"):
        load_routing(path)


def test_aliases_that_multiply_a_list_are_refused_within_the_time_limit(tmp_path: Path) -> None:
    """A few hundred bytes of aliases ("billion laughs", 9**8 items under ``listen``): the
    messages show 40 characters of the value, so the loader refuses it within libFuzzer's
    per-execution limit (whole reprs took half a minute)."""
    laughs = "".join(
        f"l{level}: &l{level} [{', '.join([f'*l{level - 1}' if level else 'x'] * 9)}]\n"
        for level in range(8)
    )
    document = f"version: 1\n{laughs}listen: *l7\nroutes: *l7\n".encode()
    spec = Spec(8192, 1, lambda _repo: [document])
    result = run_target("routing", 1, tmp_path, REPO, spec)
    assert result.outcome is Outcome.OK, result.detail
    path = tmp_path / "routing.yaml"
    path.write_bytes(document)
    with pytest.raises(ConfigError, match=r"listen: .*\[\[\[\[\[\[\[\['x', 'x'"):
        load_routing(path)
