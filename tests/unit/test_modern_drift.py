"""Drift of the reference services: parsed from the CLI form, deterministic, and what it changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from cpr_services.drift import Drift
from gateway.domain.person import DanishAddress, Name, Person, Sex, Status
from gateway.render.task import AddressStyle, Task

# Synthetic PNRs (valid birth dates, spec §9); none is a real person's.
PNRS = [
    f"{day:02d}{month:02d}80{serial:04d}"
    for day in (1, 9, 17, 25)
    for month in range(1, 13)
    for serial in (1001, 2002, 3003, 4004, 5005)
]
ADDRESS = DanishAddress(
    101, 1234, "Boulevarden", "8A", "1", "mf", post_code=8000,
    moved_in=dt.datetime(2015, 3, 1, 12, 0),
)  # fmt: skip
PERSON = Person(
    "0101801001", dt.date(1980, 1, 1), Sex.MALE, Status.RESIDENT, Name("Hans", "Hansen"),
    address=ADDRESS, credit_warning=dt.datetime(2024, 1, 1, 0, 0),
)  # fmt: skip


def test_the_cli_form_parses_into_the_dataclass() -> None:
    """``standardadr_2023,stale_address=0.1,missing_record=050`` sets all three; "" is none."""
    assert Drift.parse("standardadr_2023,stale_address=0.1,missing_record=050") == Drift(
        standardadr_2023=True, stale_address=0.1, missing_record="050"
    )
    assert Drift.parse("") == Drift()
    assert not Drift.parse("").active
    assert str(Drift(True, 0.25, "003")) == "standardadr_2023,stale_address=0.25,missing_record=003"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stale_address=lots", "stale_address: 'lots' is not a number"),
        ("stale_address=1.5", "stale_address: 1.5 is not a share from 0 to 1"),
        ("missing_record=999", "missing_record: '999' (known: 003, 004, 050)"),
        ("colour=blue", "unknown drift 'colour=blue'"),
        ("standardadr_2023=yes", "unknown drift 'standardadr_2023=yes'"),
    ],
)
def test_a_bad_drift_is_refused_with_what_was_wrong(text: str, message: str) -> None:
    """Every mistake in the CLI form is a ValueError naming the offending part."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Drift.parse(text)


def test_the_stale_share_is_deterministic_and_about_right() -> None:
    """The same PNRs are picked on every call; a 25% share picks some, not all; 0 picks none."""
    drift = Drift(stale_address=0.25)
    picked = [drift.affects(pnr) for pnr in PNRS]
    assert picked == [Drift(stale_address=0.25).affects(pnr) for pnr in PNRS]
    assert 0.1 * len(PNRS) < sum(picked) < 0.4 * len(PNRS)
    assert not any(Drift().affects(pnr) for pnr in PNRS)
    assert all(Drift(stale_address=1.0).affects(pnr) for pnr in PNRS)


def test_a_stale_address_is_the_previous_one_on_the_same_road() -> None:
    """House number two lower, moved in a year and a day earlier; road and floor unchanged."""
    stale = Drift(stale_address=1.0).apply(PERSON)
    assert stale.address == replace(
        ADDRESS, house_number="6A", moved_in=dt.datetime(2014, 2, 28, 12, 0)
    )
    low = replace(PERSON, address=replace(ADDRESS, house_number="1"))
    assert Drift(stale_address=1.0).apply(low).address.house_number == "3"  # type: ignore[union-attr]


def test_a_missing_source_drops_its_part_and_style_flips_the_task() -> None:
    """missing_record=050 drops the credit warning; standardadr_2023 sets the 2023 style."""
    assert Drift(missing_record="050").apply(PERSON) == replace(PERSON, credit_warning=None)
    assert Drift().apply(PERSON) == PERSON
    task = Task()
    assert Drift(standardadr_2023=True).apply_task(task).address_style is AddressStyle.STYLE_2023
    assert Drift().apply_task(task) == task
