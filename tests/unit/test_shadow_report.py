"""The parity report: verdicts per route, operation and field, as text and as JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.codec import LookupAnswer, Record, seal
from gateway.codec.messages import LookupRequest
from gateway.comparison import FieldKey, Thresholds, Verdict
from gateway.model import Family, FejlNr
from gateway.shadow.compare import compare
from gateway.shadow.pseudonym import KEY_ENV, Pseudonymiser, load_key
from gateway.shadow.report import build_report, main_diff, render_json, render_text
from gateway.shadow.sealing import NO_KEY, Sealer
from gateway.shadow.store import MismatchStore, Sample

PSEUDONYMS = Pseudonymiser(b"r" * 32)
DAY = dt.date(2026, 1, 1)
ADDRESS = FieldKey("lookup", "001", "STANDARDADR")
PRODDTO = FieldKey("lookup", "000", "PRODDTO")


def _pnr(i: int) -> str:
    return f"0101{60 + i % 30:02d}{1000 + i:04d}"  # synthetic, date-shaped


def _answer(pnr: str, address: str, day: dt.date = DAY) -> bytes:
    start = Record(
        "000", {"PNR": "0" * 10, "OPGAVENR": "000201", "PRODDTO": day, "FORRIGE_PRODDTO": None}
    )
    person = Record("001", {"PNR": pnr, "KOEN": "K", "STATUS": "01", "STANDARDADR": address})
    request = LookupRequest("PRIV", "0002", "Tk3nAbCd", "DEMO0002", pnr)
    records = seal([start, person], Family.PRIV)
    return LookupAnswer.for_request(request, FejlNr.OK, records).encode(Family.PRIV)


def _fill(store: MismatchStore, requests: int) -> None:
    """Every 5th answer has the 2023 address style; every 10th is one day later, in noise too."""
    for i in range(requests):
        pnr = _pnr(i)
        primary = _answer(pnr, "Boulevarden 8A,1 tv")
        address = "Boulevarden 8A, 1. tv" if i % 5 == 0 else "Boulevarden 8A,1 tv"
        day = DAY + dt.timedelta(days=1) if i % 10 == 0 else DAY
        comparison = compare(
            "lookup", Family.PRIV, primary, _answer(pnr, address, day), redact=PSEUDONYMS.pnr
        )
        noise = compare("lookup", Family.PRIV, primary, _answer(pnr, "Boulevarden 8A,1 tv", day))
        subject = PSEUDONYMS.pnr(pnr)
        store.record(Sample("lookups", "mainframe", "persons-v2", comparison, subject, at=i))
        store.record(Sample("lookups", "mainframe", "mainframe-2", noise, subject, True, at=i))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MismatchStore]:
    with MismatchStore.open(tmp_path / "shadow.sqlite", max_age_s=1e12) as opened:
        _fill(opened, 50)
        yield opened


def test_real_differences_differ_and_noise_is_clean(store: MismatchStore) -> None:
    """STANDARDADR (20%, no noise) differs; PRODDTO (10%, 10% in noise) is clean."""
    report = build_report(store)
    (op,) = report.operations
    assert (op.route, op.backend, op.operation) == ("lookups", "persons-v2", "lookup")
    assert (op.requests.compared, op.requests.differing, op.requests.noise_compared) == (50, 10, 50)
    assert op.verdict is Verdict.DIFFERS
    by_key = {f.key: f for f in op.fields}
    assert set(by_key) == {ADDRESS, PRODDTO}
    assert by_key[ADDRESS].verdict is Verdict.DIFFERS and by_key[ADDRESS].stats.differs == 10
    assert by_key[PRODDTO].verdict is Verdict.CLEAN and by_key[PRODDTO].stats.noise_differs == 5
    assert op.fields[0].key == ADDRESS  # real differences first


def test_examples_are_the_newest_three_and_carry_pseudonyms(store: MismatchStore) -> None:
    """Up to three examples per field, newest first, with redacted values and pseudonyms."""
    (op,) = build_report(store).operations
    address = next(f for f in op.fields if f.key == ADDRESS)
    assert [e.at for e in address.examples] == [45, 40, 35]
    assert all(e.subject.startswith("p:") for e in address.examples)
    assert address.examples[0].primary == "Boulevarden 8A,1 tv"
    assert address.examples[0].candidate == "Boulevarden 8A, 1. tv"


def test_few_requests_are_inconclusive(tmp_path: Path) -> None:
    """Ten requests are below min_samples: the operation is inconclusive whatever differs."""
    with MismatchStore.open(tmp_path / "s.sqlite", max_age_s=1e12) as small:
        _fill(small, 10)
        (op,) = build_report(small).operations
    assert op.verdict is Verdict.INCONCLUSIVE


def test_stored_thresholds_are_used_and_can_be_overridden(store: MismatchStore) -> None:
    """A route's stored thresholds judge it; thresholds passed in win over them."""
    store.set_thresholds("lookups", Thresholds(max_excess_rate=0.5))
    assert build_report(store).operations[0].verdict is Verdict.CLEAN
    strict = {"lookups": Thresholds(max_excess_rate=0.0)}
    assert build_report(store, strict).operations[0].verdict is Verdict.DIFFERS


def test_text_report_names_verdicts_fields_and_no_pnr(store: MismatchStore) -> None:
    """The text shows the operation verdict, each field's rates and examples, never a PNR."""
    text = render_text(build_report(store))
    assert "route lookups, lookup: persons-v2 against the primary: DIFFERS" in text
    assert "50 requests compared, 10 differing (20.0%); 50 noise comparisons" in text
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(str(ADDRESS)))
    assert line.split()[-6:] == ["50", "10", "20.00%", "0.00%", "50", "differs"]
    assert "'Boulevarden 8A,1 tv' → 'Boulevarden 8A, 1. tv'" in text
    assert not any(_pnr(i) in text for i in range(50))


def test_json_report_holds_the_same_numbers(store: MismatchStore) -> None:
    """The JSON form carries verdicts, counts, rates and examples for scripts."""
    body = json.loads(render_json(build_report(store)))
    (op,) = body["operations"]
    assert (op["verdict"], op["requests"]["compared"]) == ("differs", 50)
    address = next(f for f in op["fields"] if f["key"] == str(ADDRESS))
    assert (address["samples"], address["differs"], address["rate"]) == (50, 10, 0.2)
    assert address["verdict"] == "differs" and len(address["examples"]) == 3
    assert address["examples"][0]["at"] == "1970-01-01T00:00:45+00:00"


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    """No comparisons yet: one line, and an empty JSON list."""
    with MismatchStore.open(tmp_path / "s.sqlite") as empty:
        report = build_report(empty)
    assert render_text(report) == "No shadow comparisons recorded yet.\n"
    assert json.loads(render_json(report)) == {"rows_kept": 0, "operations": []}


def test_main_diff_prints_the_report_or_fails_without_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 with the report (JSON on request); exit 1 naming a missing store."""
    path = tmp_path / "shadow.sqlite"
    assert main_diff(path, as_json=False) == 1
    assert "no shadow store at" in capsys.readouterr().err
    assert not path.exists()
    with MismatchStore.open(path, max_age_s=1e12) as filled:
        _fill(filled, 30)
    assert main_diff(path, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["operations"][0]["verdict"] == "differs"
    assert main_diff(path, as_json=False) == 0
    assert "DIFFERS" in capsys.readouterr().out


def test_diff_shows_sealed_values_with_the_key_file_and_says_so_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cpr-gateway diff` opens the values with the gateway's key file; without a key each
    example says "(encrypted; no key)", in text and JSON, and the verdicts are the same."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "shadow.key"
    key = load_key(key_file)
    path = tmp_path / "shadow.sqlite"
    with MismatchStore.open(path, max_age_s=1e12, sealer=Sealer(key)) as filled:
        _fill(filled, 30)
    assert main_diff(path, as_json=False, key_file=key_file) == 0
    assert "'Boulevarden 8A,1 tv' → 'Boulevarden 8A, 1. tv'" in capsys.readouterr().out
    assert main_diff(path, as_json=False, key_file=tmp_path / "absent.key") == 0
    text = capsys.readouterr().out
    assert "DIFFERS" in text and "Boulevarden" not in text
    assert f"      {NO_KEY}  (mainframe, p:" in text
    assert main_diff(path, as_json=True) == 0
    (op,) = json.loads(capsys.readouterr().out)["operations"]
    example = op["fields"][0]["examples"][0]
    assert (example["primary"], example["candidate"], example["readable"]) == (
        NO_KEY,
        NO_KEY,
        False,
    )
    assert not key_file.with_name("absent.key").exists()  # a reader never makes a key


def test_the_diff_command_takes_the_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cpr-gateway diff --store S --key-file K` opens the values with K; without it they are
    shown as encrypted (no routing.yaml here to name one)."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    key_file, path = tmp_path / "shadow.key", tmp_path / "shadow.sqlite"
    with MismatchStore.open(path, max_age_s=1e12, sealer=Sealer(load_key(key_file))) as filled:
        _fill(filled, 30)
    assert main(["diff", "--store", str(path), "--key-file", str(key_file)]) == 0
    assert "'Boulevarden 8A,1 tv' → 'Boulevarden 8A, 1. tv'" in capsys.readouterr().out
    assert main(["diff", "--store", str(path)]) == 0
    assert NO_KEY in capsys.readouterr().out
