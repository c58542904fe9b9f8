"""The synthetic register: deterministic, and covering every case the wire contract has."""

from __future__ import annotations

import collections
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpr_mainframe.register import Register
from cpr_mainframe.register import generate as generate_module
from cpr_mainframe.register.draw import MOD11_OPTIONAL_FROM, REGISTER_DATE, seventh_digits
from cpr_mainframe.register.generate import generate
from gateway.codec.fields import is_printable_latin1
from gateway.domain.person import (
    UNKNOWN_PNR,
    CivilStatus,
    CustodyType,
    GuardianKind,
    NameMarker,
    Person,
    ProtectionType,
    Sex,
    Status,
    birth_date_of,
    century,
    passes_modulus11,
)
from gateway.model import Family
from gateway.render import Task, render_answer

TODAY = REGISTER_DATE.date()


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Person]:
    """Every person of a 2,000-person register, by PNR, read back from the file.

    Without quirks: a blank relation PNR is, on purpose, no link (the quirks have their
    own tests, tests/unit/test_register_quirks.py).
    """
    path = tmp_path_factory.mktemp("register") / "register.db"
    generate(path, count=2000, seed=1, quirk_share=0.0)
    register = Register.open(path)
    try:
        return {pnr: person for pnr in register.pnrs() if (person := register.get(pnr))}
    finally:
        register.close()


def _rows(path: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM person ORDER BY pnr").fetchall()
        return rows + db.execute("SELECT * FROM meta ORDER BY key").fetchall()


def _relatives(person: Person) -> Iterator[str]:
    if person.civil and person.civil.spouse:
        yield str(person.civil.spouse.pnr)
    yield from (str(r.pnr) for r in (person.mother, person.father) if r)


def test_same_seed_gives_identical_rows_and_another_seed_does_not(tmp_path: Path) -> None:
    """Generation is a pure function of (seed, count), down to the stored bytes."""
    generate(tmp_path / "a.db", count=300, seed=7)
    generate(tmp_path / "b.db", count=300, seed=7)
    generate(tmp_path / "c.db", count=300, seed=8)
    assert _rows(tmp_path / "a.db") == _rows(tmp_path / "b.db")
    assert _rows(tmp_path / "a.db") != _rows(tmp_path / "c.db")


@pytest.mark.parametrize("count", [1, 2, 37, 250])
def test_register_holds_exactly_the_count_asked_for(tmp_path: Path, count: int) -> None:
    """Households are never cut, yet the register has exactly ``count`` persons."""
    generate(tmp_path / "r.db", count=count)
    register = Register.open(tmp_path / "r.db")
    assert register.count() == count
    assert register.meta["count"] == str(count)
    register.close()


def test_a_failed_build_leaves_neither_register_nor_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-built register is never left where it could be opened."""

    def broken(count: int, seed: int = 1) -> Iterator[Person]:
        yield from generate_module.persons(10, seed)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(generate_module, "persons", broken)
    with pytest.raises(RuntimeError):
        generate(tmp_path / "r.db", count=100)
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_is_shown_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True draws a tqdm bar on stderr; the default is silent."""
    generate(tmp_path / "quiet.db", count=20)
    assert capsys.readouterr().err == ""
    generate(tmp_path / "loud.db", count=20, progress=True)
    assert "20/20" in capsys.readouterr().err


def test_every_status_and_civil_status_occurs(people: dict[str, Person]) -> None:
    """All STATUS (§8.1) and CIVST (§8.2) codes are in a 2,000-person register."""
    assert {p.status for p in people.values()} == set(Status)
    assert {p.civil.status for p in people.values() if p.civil} == set(CivilStatus)


def test_spouse_links_are_mutual_and_land_on_real_persons(people: dict[str, Person]) -> None:
    """A known spouse is in the register and names this person back; unknown is 10 zeros."""
    linked = 0
    for person in people.values():
        spouse = person.civil.spouse if person.civil else None
        if spouse is None or spouse.pnr == UNKNOWN_PNR:
            continue
        other = people[str(spouse.pnr)]
        assert other.civil is not None and other.civil.spouse is not None
        assert other.civil.spouse.pnr == person.pnr
        linked += 1
    assert linked > 500


def test_parent_and_child_links_agree(people: dict[str, Person]) -> None:
    """Every child listed is a person whose mother or father is the parent, and back."""
    for person in people.values():
        for child in person.children:
            parents = {r.pnr for r in (people[child].mother, people[child].father) if r}
            assert person.pnr in parents
        for parent in (person.mother, person.father):
            if parent is not None and parent.pnr != UNKNOWN_PNR:
                assert person.pnr in people[str(parent.pnr)].children
    assert sum(1 for p in people.values() if p.father and p.father.pnr == UNKNOWN_PNR) > 0


def test_links_to_other_persons_never_dangle(people: dict[str, Person]) -> None:
    """Custody, guardian and PNRGAELD links point at persons in the register."""
    targets: list[str] = []
    for person in people.values():
        targets += [c.related_pnr for c in person.custody]
        if person.guardianship and person.guardianship.kind is GuardianKind.PERSON:
            assert person.guardianship.guardian_pnr is not None
            targets.append(person.guardianship.guardian_pnr)
        if person.status in (Status.DELETED, Status.CHANGED):
            assert people[person.replaced_by].status is Status.RESIDENT
        targets += [pnr for pnr in _relatives(person) if pnr != UNKNOWN_PNR]
    assert all(pnr in people for pnr in targets)


def test_custody_guardianship_and_each_protection_occur(people: dict[str, Person]) -> None:
    """Each custody type, both guardian kinds and each active protection type occur."""
    persons = list(people.values())
    assert {c.type for p in persons for c in p.custody} == set(CustodyType)
    assert {p.guardianship.kind for p in persons if p.guardianship} == set(GuardianKind)
    active = {pr.type for p in persons for pr in p.protections if pr.active_on(TODAY)}
    assert active == set(ProtectionType)
    assert any(not pr.active_on(TODAY) for p in persons for pr in p.protections)


def test_credit_warnings_lie_in_the_past_and_in_the_future(people: dict[str, Person]) -> None:
    """Credit warnings occur, some starting after the register date (spec §5 050)."""
    starts = [p.credit_warning for p in people.values() if p.credit_warning]
    assert any(s < REGISTER_DATE for s in starts)
    assert any(s > REGISTER_DATE for s in starts)


def test_statuses_carry_their_facts(people: dict[str, Person]) -> None:
    """80 has a foreign address, 70 a disappearance, residents an address, 20 a contact."""
    for person in people.values():
        assert (person.foreign is not None) == (person.status is Status.EMIGRATED)
        assert (person.disappeared is not None) == (person.status is Status.DISAPPEARED)
        if person.status.is_resident:
            assert person.address is not None
        if person.status is Status.NO_RESIDENCE:
            assert person.contact is not None and person.address is None
    assert any(p.contact for p in people.values() if p.status.is_resident)


def test_pnrs_are_unique_dated_and_consistent(people: dict[str, Person]) -> None:
    """First six digits are the birth date; 7th digit gives its century; parity gives sex."""
    assert len(people) == 2000
    for pnr, person in people.items():
        assert birth_date_of(pnr) == person.birth_date
        assert int(pnr[9]) % 2 == (1 if person.sex is Sex.MALE else 0)


def test_modulus_11_passes_before_october_2007_and_may_fail_after(
    people: dict[str, Person],
) -> None:
    """Spec §9: both kinds of valid PNR are present; old ones always pass."""
    old = [pnr for pnr, p in people.items() if p.birth_date < MOD11_OPTIONAL_FROM]
    new = [pnr for pnr, p in people.items() if p.birth_date >= MOD11_OPTIONAL_FROM]
    assert all(passes_modulus11(pnr) for pnr in old)
    assert any(not passes_modulus11(pnr) for pnr in new)
    assert {century(int(pnr[6]), int(pnr[4:6])) for pnr in people} == {1800, 1900, 2000}


def test_names_carry_danish_and_accented_letters_and_markers(people: dict[str, Person]) -> None:
    """æ ø å Æ Ø Å and é ü ä ö occur in names and road names; every name marker occurs."""
    names = " ".join(f"{p.name.given} {p.name.last}" for p in people.values())
    roads = " ".join(p.address.road_name for p in people.values() if p.address)
    assert set("æøåÆØÅéüäö") <= set(names)
    assert set("æøåéü") <= set(roads)
    parts = {
        m
        for p in people.values()
        for m in (p.name.first_marker, p.name.middle_marker, p.name.last_marker)
    }
    assert parts == set(NameMarker)


def test_someone_has_more_children_than_an_off4_answer_can_hold(
    people: dict[str, Person],
) -> None:
    """At least one person has so many children that their OFF4 answer loses 014 records."""
    father = max(people.values(), key=lambda p: len(p.children))
    records = render_answer(father, Family.OFF4, Task(), 1234, TODAY)
    assert 0 < sum(1 for r in records if r.type == "014") < len(father.children)


def test_every_person_survives_a_json_round_trip(people: dict[str, Person]) -> None:
    """Person.to_json/from_json are lossless for every generated person."""
    for person in people.values():
        assert Person.from_json(person.to_json()) == person


def test_pnr_helpers_follow_the_century_table() -> None:
    """Spec §9 table: 7th digit and year give the century; impossible dates are None."""
    assert century(3, 99) == 1900
    assert century(4, 36) == 2000 and century(4, 37) == 1900
    assert century(9, 10) == 2000 and century(9, 80) == 1900
    assert century(5, 57) == 2000 and century(8, 58) == 1800
    assert birth_date_of("0101601234") == dt.date(1960, 1, 1)
    assert birth_date_of("3102601234") is None
    assert birth_date_of("01016O1234") is None
    for year in (1858, 1899, 1900, 1936, 1937, 1999, 2000, 2036, 2037, 2057):
        assert all(century(d, year % 100) + year % 100 == year for d in seventh_digits(year))
    assert passes_modulus11("0707614285")
    assert not passes_modulus11("0707614286")


def test_random_fill_is_mostly_residents_with_some_dead(people: dict[str, Person]) -> None:
    """Beyond the showcase, the fill looks like a population: mostly residents, some dead."""
    statuses = collections.Counter(p.status for p in people.values())
    assert statuses[Status.RESIDENT] > 1500
    assert statuses[Status.DEAD] > 20


def _widths(person: Person) -> Iterator[tuple[str, int]]:
    """(value, width of the narrowest field it is written to) for each text value."""
    name = person.name
    yield from ((name.given, 50), (name.middle, 40), (name.last, 40), (person.occupation, 34))
    if person.address:
        a = person.address
        yield from ((a.road_addressing_name, 20), (a.post_district, 20), (a.co_name, 34))
        yield from ((a.locality, 34), (a.town, 34), (a.building, 4), (a.door, 4))
        yield from ((line, 34) for line in a.supplementary)
    for lines in (person.foreign, person.contact):
        yield from ((line, 34) for line in (lines.lines if lines else ()))
    if person.guardianship:
        yield person.guardianship.guardian_name, 34
        yield from ((line, 34) for line in person.guardianship.guardian_address)
    if person.civil and person.civil.separation:
        yield person.civil.separation.reference, 12
    if person.birthplace:
        yield person.birthplace.text, 20
    yield from ((ref, 15) for ref in person.customer_refs)
    yield from ((note.text, 40) for note in person.notes)
    yield from ((c.remark, 30) for c in person.conditions)


def test_every_text_fits_its_field_and_printable_latin1(people: dict[str, Person]) -> None:
    """The generator never relies on the renderer cutting text, and never leaves Latin-1."""
    for person in people.values():
        for value, width in _widths(person):
            assert len(value) <= width, value
            assert is_printable_latin1(value.encode("latin-1"))
