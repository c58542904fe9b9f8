"""OFF4 answers (spec §6): record selection by task, per-item records, status rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace

import pytest

from cpr_mainframe.register import Register
from cpr_mainframe.register.generate import generate
from gateway.codec import LookupAnswer, Record
from gateway.codec.headers import MAX_DATA_LENGTH
from gateway.codec.records import OFF4_LAYOUTS
from gateway.domain.person import (
    UNKNOWN_PNR,
    CivilState,
    CivilStatus,
    ContactAddress,
    DanishAddress,
    Name,
    Person,
    Protection,
    ProtectionType,
    Relative,
    Sex,
    Status,
)
from gateway.model import Family, FejlNr
from gateway.render import Task, render_answer

TODAY = dt.date(2026, 1, 1)
PNR = "0101601234"  # synthetic
ADDRESS = DanishAddress(
    municipality=851, road_code=77, road_name="Søndergade", house_number="12",
    post_code=9000, post_district="Aalborg", road_addressing_name="Søndergade",
    moved_in=dt.datetime(2001, 2, 3, 4, 5),
)  # fmt: skip
MOTHER = Relative("0202402468", dt.date(1940, 2, 2), Name("Åse", "Møller"), dt.date(1960, 1, 1))
PERSON = Person(
    pnr=PNR,
    birth_date=dt.date(1960, 1, 1),
    sex=Sex.MALE,
    status=Status.RESIDENT,
    name=Name("Jørgen", "Müller", "Bach"),
    status_start=dt.datetime(1960, 1, 1, 8, 0),
    address=ADDRESS,
    civil=CivilState(CivilStatus.UNMARRIED, dt.datetime(1960, 1, 1, 8, 0)),
    mother=MOTHER,
    father=Relative(),
)
DEFAULT = Task()


def _answer(person: Person, task: Task = DEFAULT) -> tuple[Record, ...]:
    return render_answer(person, Family.OFF4, task, 42, TODAY)


def _types(person: Person, task: Task = DEFAULT) -> list[str]:
    return [r.type for r in _answer(person, task)]


def _only(person: Person, rectype: str, task: Task = DEFAULT) -> Record:
    (record,) = [r for r in _answer(person, task) if r.type == rectype]
    return record


def test_default_task_gives_the_records_the_person_has() -> None:
    """A plain resident gets 001 002 003 008 012 015 between 000 and 999, in order."""
    assert _types(PERSON) == ["000", "001", "002", "003", "008", "012", "015", "999"]
    assert _answer(PERSON)[0].fields["OPGAVENR"] == "004201"


def test_task_record_list_limits_the_answer() -> None:
    """Only the types the task names (plus 000 and 999) are sent."""
    task = Task(off4_records=frozenset({"003", "015"}))
    assert _types(PERSON, task) == ["000", "003", "015", "999"]


def test_task_rejects_unknown_record_types_and_bad_suffixes() -> None:
    """A task naming a type outside 001-020/050, or a suffix not two digits, is refused."""
    with pytest.raises(ValueError, match="021"):
        Task(off4_records=frozenset({"001", "021"}))
    with pytest.raises(ValueError, match="task_suffix"):
        Task(task_suffix="1")


def test_unknown_father_is_ten_zeros_on_the_wire() -> None:
    """Spec §6: an unknown parent PNR is 0000000000; the known mother is written out."""
    parents = _only(PERSON, "015")
    assert parents.fields["PNRFAR"] == UNKNOWN_PNR and parents.fields["FARNVN"] == ""
    assert parents.fields["PNRMOR"] == MOTHER.pnr
    assert parents.fields["MORNVN"] == "Møller,Åse"


def test_one_004_per_protection_and_one_014_per_child() -> None:
    """Repeated facts become repeated records, next to each other (spec §4.2)."""
    person = replace(
        PERSON,
        protections=(
            Protection(ProtectionType.LOCAL_DIRECTORY, dt.date(2010, 1, 1)),
            Protection(ProtectionType.MARKETING, dt.date(2011, 1, 1), dt.date(2012, 1, 1)),
        ),
        children=("0101901234", "0202921234", "0303941234"),
    )
    records = _answer(person)
    protections = [r for r in records if r.type == "004"]
    assert [p.fields["BESKYTTYPE"] for p in protections] == ["0002", "0003"]
    assert protections[1].fields["SLET_DT"] == dt.date(2012, 1, 1)
    assert [r.fields["BARN_PNR"] for r in records if r.type == "014"] == list(person.children)


@pytest.mark.parametrize("status", [Status.ANNULLED, Status.DISAPPEARED, Status.DEAD])
def test_from_status_30_the_003_record_carries_only_the_addressing_name(status: Status) -> None:
    """Spec §6: status >= 30 gives an 003 with ADRNVN alone."""
    fields = dict(_only(replace(PERSON, status=status), "003").fields)
    assert fields.pop("ADRNVN") == "Müller,Jørgen Bach"
    assert fields.pop("PNR") == PNR
    assert all(value in ("", 0) for value in fields.values())


def test_dead_person_has_no_002_even_when_the_task_wants_deceased_addresses() -> None:
    """Spec §6: no 002 for the dead; deceased_address is a PRIV parameter (project rule)."""
    dead = replace(PERSON, status=Status.DEAD)
    assert "002" not in _types(dead)
    assert "002" not in _types(dead, Task(deceased_address=True))


def test_protected_person_keeps_records_but_loses_names_and_address() -> None:
    """Project rule: 002, 003 and 008 stay but are blank; 004 says why."""
    person = replace(
        PERSON, protections=(Protection(ProtectionType.NAME_ADDRESS, dt.date(2020, 1, 1)),)
    )
    records = {r.type: r for r in _answer(person)}
    assert records["002"].fields["KOMKOD"] == 0 and records["002"].fields["TILFLYDTO"] is None
    assert records["003"].fields["ADRNVN"] == "" and records["003"].fields["POSTNR"] == 0
    assert records["008"].fields["FORNVN"] == "" and records["008"].fields["ADRNVN"] == ""
    assert records["004"].fields["BESKYTTYPE"] == "0001"
    shown = _only(person, "008", Task(exclude_protected=False))
    assert shown.fields["FORNVN"] == "Jørgen"


def test_too_many_children_are_cut_and_the_counter_stays_honest() -> None:
    """Project rule: trailing 014s go until the data fits 2880 bytes; 999 counts what is sent."""
    children = tuple(f"{day:02d}0190{n:04d}" for day in range(1, 29) for n in range(4))
    records = _answer(replace(PERSON, children=children))
    kept = [r for r in records if r.type == "014"]
    assert 0 < len(kept) < len(children)
    assert [r.fields["BARN_PNR"] for r in kept] == list(children[: len(kept)])
    assert records[-1].fields["ANTAL"] == len(records) - 2
    assert sum(OFF4_LAYOUTS[r.type].length for r in records) <= MAX_DATA_LENGTH


def test_each_contact_address_gives_a_006_with_its_period() -> None:
    """Ended contact addresses repeat 006 after the current one, with START_DT and SLET_DT."""
    current = ContactAddress(("Sømandshjemmet",), dt.datetime(2024, 3, 1, 10, 0))
    former = ContactAddress(("Postboks 12",), dt.datetime(2015, 6, 1, 9, 0), dt.date(2020, 2, 2))
    records = _answer(replace(PERSON, contact=current, former_contacts=(former,)))
    contacts = [r.fields for r in records if r.type == "006"]
    assert [(c["KONTAKTADR1"], c["START_DT"], c["SLET_DT"]) for c in contacts] == [
        ("Sømandshjemmet", dt.date(2024, 3, 1), None),
        ("Postboks 12", dt.date(2015, 6, 1), dt.date(2020, 2, 2)),
    ]


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Register]:
    """A 2,000-person register shared by the exhaustive test."""
    path = tmp_path_factory.mktemp("register") / "register.db"
    generate(path, count=2000, seed=1)
    register = Register.open(path)
    yield register
    register.close()


def test_every_person_renders_encodes_and_decodes_back_equal(register: Register) -> None:
    """For every person: at most 2908 bytes and decode(encode(x)) == x under OFF4."""
    truncated = 0
    for pnr in register.pnrs():
        person = register.get(pnr)
        assert person is not None
        records = _answer(person)
        answer = LookupAnswer("0042", "0", "6", "Tk3nAbCd", "WXYZ0001", FejlNr.OK, records)
        data = answer.encode(Family.OFF4)
        assert len(data) <= 2908
        assert LookupAnswer.decode(data, Family.OFF4) == answer
        truncated += sum(1 for r in records if r.type == "014") < len(person.children)
    assert truncated >= 1
