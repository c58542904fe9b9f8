"""PRIV answers (spec §5) and the name/address forms they share with OFF4 (spec §8.4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpr_mainframe.register import Register
from cpr_mainframe.register.generate import generate
from gateway.codec import LookupAnswer, Record
from gateway.codec.headers import MAX_DATA_LENGTH
from gateway.codec.records import PRIV_LAYOUTS
from gateway.domain.person import (
    CivilState,
    CivilStatus,
    ContactAddress,
    DanishAddress,
    ForeignAddress,
    GuardianKind,
    Guardianship,
    Name,
    Person,
    Protection,
    ProtectionType,
    Sex,
    Status,
)
from gateway.model import Family, FejlNr
from gateway.render import AddressStyle, NameFormat, Task, render_answer
from gateway.render.address import addressing_name, house_number, standard_address

TODAY = dt.date(2026, 1, 1)
PNR = "0101601234"  # synthetic
PRIV_TYPES = {"000", "001", "002", "003", "004", "005", "011", "050", "999"}
ADDRESS = DanishAddress(
    municipality=101, road_code=1234, road_name="Boulevarden", house_number="8A",
    floor="1", door="tv", post_code=2100, post_district="København Ø",
    road_addressing_name="Boulevarden", moved_in=dt.datetime(2010, 5, 1, 12, 0),
)  # fmt: skip
PERSON = Person(
    pnr=PNR,
    birth_date=dt.date(1960, 1, 1),
    sex=Sex.FEMALE,
    status=Status.RESIDENT,
    name=Name("Hanne", "Østergaard", "Marie"),
    status_start=dt.datetime(1960, 1, 1, 8, 0),
    address=ADDRESS,
    civil=CivilState(CivilStatus.UNMARRIED, dt.datetime(1960, 1, 1, 8, 0)),
)


DEFAULT = Task()


def _answer(person: Person, task: Task = DEFAULT) -> tuple[Record, ...]:
    return render_answer(person, Family.PRIV, task, 1234, TODAY)


def _current(person: Person, task: Task = DEFAULT) -> Record:
    (record,) = [r for r in _answer(person, task) if r.type == "001"]
    return record


def _wire(record: Record) -> bytes:
    return PRIV_LAYOUTS[record.type].encode({"RECTYPE": record.type, **record.fields})


def _protected(kind: ProtectionType, end: dt.date | None = None) -> Person:
    return replace(PERSON, protections=(Protection(kind, dt.date(2020, 1, 1), end),))


def test_answer_opens_with_000_and_closes_with_999() -> None:
    """000 carries OPGAVENR = KUNDENR + task suffix and today; 999 counts what lies between."""
    records = _answer(PERSON, Task(task_suffix="07"))
    start, end = records[0], records[-1]
    assert (start.type, start.fields["OPGAVENR"], start.fields["PRODDTO"]) == (
        "000",
        "123407",
        TODAY,
    )
    assert start.fields["FORRIGE_PRODDTO"] is None and start.fields["PNR"] == "0" * 10
    assert (end.type, end.fields["ANTAL"]) == ("999", len(records) - 2)


def test_resident_gets_name_and_address_in_wire_forms() -> None:
    """ADRNVN, STANDARDADR, HUSNR 008A, ETAGE 01, SIDEDOER right-aligned (spec §5)."""
    record = _current(PERSON)
    assert record.fields["ADRNVN"] == "Østergaard,Hanne Marie"
    assert record.fields["FORNVN"] == "Hanne Marie"
    assert record.fields["STANDARDADR"] == "Boulevarden 8A,1 tv"
    wire = _wire(record)
    assert wire[318:322] == b"008A" and wire[322:324] == b"01" and wire[324:328] == b"  tv"
    assert (record.fields["POSTNR"], record.fields["KOMKOD"], record.fields["VEJKOD"]) == (
        2100,
        101,
        1234,
    )


def test_name_format_and_address_style_follow_the_task() -> None:
    """FIRST_LAST and the 2023 style change ADRNVN and STANDARDADR, nothing else."""
    task = Task(name_format=NameFormat.FIRST_LAST, address_style=AddressStyle.STYLE_2023)
    record = _current(PERSON, task)
    assert record.fields["ADRNVN"] == "Hanne Marie Østergaard"
    assert record.fields["STANDARDADR"] == "Boulevarden 8A, 1. tv"


def test_active_name_address_protection_blanks_every_name_and_address_field() -> None:
    """Spec §5: names and address blank, POSTNR/KOMKOD/VEJKOD 0000; start stamp shown."""
    fields = _current(_protected(ProtectionType.NAME_ADDRESS)).fields
    blank = ("ADRNVN", "CONVN", "LOKALITET", "STANDARDADR", "BYNVN", "POSTDISTTXT", "HUSNR")
    assert all(fields[name] == "" for name in (*blank, "FORNVN", "EFTERNVN", "VEJADRNVN"))
    assert (fields["POSTNR"], fields["KOMKOD"], fields["VEJKOD"]) == (0, 0, 0)
    assert fields["TILFLYDTO"] is None
    assert fields["NVNADRBESK_START"] == dt.datetime(2020, 1, 1)


def test_protection_is_ignored_when_ended_or_when_the_task_includes_protected() -> None:
    """An ended protection hides nothing; exclude_protected=False shows the address."""
    ended = _protected(ProtectionType.NAME_ADDRESS, end=dt.date(2021, 1, 1))
    assert _current(ended).fields["ADRNVN"] == "Østergaard,Hanne Marie"
    assert _current(ended).fields["NVNADRBESK_START"] is None
    shown = _current(_protected(ProtectionType.NAME_ADDRESS), Task(exclude_protected=False))
    assert shown.fields["POSTNR"] == 2100


def test_marketing_protection_start_is_written() -> None:
    """REKBESK start carries an active marketing protection (0003)."""
    fields = _current(_protected(ProtectionType.MARKETING)).fields
    assert fields["REKBESK_START"] == dt.datetime(2020, 1, 1)
    assert fields["ADRNVN"] != ""


def test_emigrated_person_has_no_address_block_and_a_002_follows() -> None:
    """Spec §5: status 80 leaves the address block empty; 002 holds the foreign address."""
    lines = ("Karl Johans gate 12", "0154 Oslo", "NORGE")
    when = dt.datetime(2019, 6, 1, 9, 30)
    person = replace(
        PERSON, status=Status.EMIGRATED, address=None, foreign=ForeignAddress(lines, "5110", when)
    )
    records = _answer(person)
    assert [r.type for r in records] == ["000", "001", "002", "004", "999"]
    assert records[1].fields["STANDARDADR"] == "" and records[1].fields["POSTNR"] == 0
    assert records[2].fields["UDLANDADR3"] == "NORGE"
    assert records[2].fields["UDLANDADR_DTO"] == when


def test_each_contact_address_gives_a_003_the_current_one_first() -> None:
    """Ended contact addresses repeat 003 after the current one; each carries its start."""
    current = ContactAddress(("Sømandshjemmet", "Nyhavn 22"), dt.datetime(2024, 3, 1, 10, 0))
    former = tuple(
        ContactAddress(
            (f"Postboks {n}",), dt.datetime(2000 + n, 1, 1, 9, 0), dt.date(2001 + n, 1, 1)
        )
        for n in range(3)
    )
    records = _answer(replace(PERSON, contact=current, former_contacts=former))
    contacts = [r for r in records if r.type == "003"]
    assert [r.fields["KONTAKTADR1"] for r in contacts] == [
        "Sømandshjemmet", "Postboks 0", "Postboks 1", "Postboks 2",
    ]  # fmt: skip
    assert [r.fields["KONTAKTADR_DTO"] for r in contacts][1:] == [c.start for c in former]
    assert records[-1].fields["ANTAL"] == len(records) - 2


def test_many_contact_addresses_are_cut_at_the_data_cap() -> None:
    """Project rule: trailing 003s go until the data fits 2880 bytes; 999 counts what is sent."""
    former = tuple(
        ContactAddress((f"Postboks {n}",), dt.datetime(1990, 1, 1 + n, 9, 0), dt.date(1991, 1, 1))
        for n in range(20)
    )
    records = _answer(replace(PERSON, former_contacts=former))
    kept = [r.fields["KONTAKTADR1"] for r in records if r.type == "003"]
    assert 0 < len(kept) < len(former)
    assert kept == [c.lines[0] for c in former[: len(kept)]]
    size = sum(PRIV_LAYOUTS[r.type].length for r in records)
    assert size <= MAX_DATA_LENGTH < size + PRIV_LAYOUTS["003"].length
    assert records[-1].fields["ANTAL"] == len(records) - 2


def test_dead_person_has_an_address_only_when_the_task_asks() -> None:
    """Status 90: no address by default; the last known one with deceased_address."""
    dead = replace(PERSON, status=Status.DEAD)
    assert _current(dead).fields["STANDARDADR"] == ""
    assert _current(dead, Task(deceased_address=True)).fields["STANDARDADR"] != ""


def test_guardianship_gives_005_and_umyndig_start_while_active() -> None:
    """An active guardianship adds 005 (name and lines) and UMYNDIG start; an ended one not."""
    start = dt.datetime(2015, 3, 1, 10, 0)
    lines = ("Vestergade 3", "8000 Aarhus C")
    guardianship = Guardianship(start, GuardianKind.TEXT, "Advokat Jens Ørum", lines)
    records = _answer(replace(PERSON, guardianship=guardianship))
    (guardian,) = [r for r in records if r.type == "005"]
    assert guardian.fields["VAERGE_ADRNVN"] == "Advokat Jens Ørum"
    assert guardian.fields["VAERGEADR2"] == "8000 Aarhus C"
    assert records[1].fields["UMYNDIG_START"] == start
    ended = replace(guardianship, end=dt.date(2020, 1, 1))
    assert "005" not in {r.type for r in _answer(replace(PERSON, guardianship=ended))}


def test_credit_warning_and_customer_references() -> None:
    """050 type 0005 even when it starts in the future; 011 holds up to five references."""
    future = dt.datetime(2031, 2, 3, 4, 5)
    person = replace(PERSON, credit_warning=future, customer_refs=("KUNDE-1", "KUNDE-2"))
    records = {r.type: r for r in _answer(person)}
    assert records["050"].fields["KREDITADVTYPE"] == "0005"
    assert records["050"].fields["KREDITADV_START"] == future
    assert records["011"].fields["KUNDEREF2"] == "KUNDE-2"


def test_replacement_pnr_is_written_for_status_50_and_60_only() -> None:
    """PNRGAELD carries the PNR in force instead, for deleted and changed records."""
    changed = replace(PERSON, status=Status.CHANGED, replaced_by="0101601235", address=None)
    assert _current(changed).fields["PNRGAELD"] == "0101601235"
    assert _current(replace(changed, status=Status.RESIDENT)).fields["PNRGAELD"] == ""


_HISTORIC, _2023 = AddressStyle.HISTORIC, AddressStyle.STYLE_2023


@pytest.mark.parametrize(
    ("parts", "style", "expected"),
    [
        (("Boulevarden", "101", "1", "mf"), _HISTORIC, "Boulevarden 101,1 mf"),
        (("Industrivænget", "2", "st", "tv"), _HISTORIC, "Industrivænget 2,st tv"),
        (("Strandvejen", "123A", "st", "tv"), _2023, "Strandvejen 123A, st. tv"),
        (("Ahlefeldtsgade", "22", "2", ""), _2023, "Ahlefeldtsgade 22, 2."),
        (("Kærvej", "7", "", ""), _2023, "Kærvej 7"),
        (("Kærvej", "7", "", ""), _HISTORIC, "Kærvej 7"),
    ],
)
def test_standard_address_matches_the_spec_examples(
    parts: tuple[str, str, str, str], style: AddressStyle, expected: str
) -> None:
    """Spec §8.4 examples of STANDARDADR, historic and 2023 style."""
    road, number, floor, door = parts
    address = replace(ADDRESS, road_name=road, house_number=number, floor=floor, door=door)
    assert standard_address(address, style) == expected


def test_long_road_names_fall_back_to_the_road_addressing_name() -> None:
    """STANDARDADR never exceeds 34: VEJADRNVN replaces a road name that is too long."""
    address = replace(
        ADDRESS,
        road_name="Kong Frederik den Syvendes Gade",
        road_addressing_name="Kong Fr. VII's Gade",
        house_number="123A",
        floor="12",
    )
    assert standard_address(address, AddressStyle.STYLE_2023) == "Kong Fr. VII's Gade 123A, 12. tv"


def test_house_numbers_are_three_digits_and_a_letter() -> None:
    """HUSNR: 001, 008A, 101 (the trailing space comes from field padding)."""
    numbers = ("1", "8A", "101", "", "12b")
    assert [house_number(n) for n in numbers] == ["001", "008A", "101", "", "012B"]


@given(
    road=st.text(alphabet="abcæøåé .-", min_size=1, max_size=40),
    short=st.text(alphabet="abcæøå", min_size=1, max_size=20),
    number=st.from_regex(r"[1-9][0-9]{0,2}[A-Z]?", fullmatch=True),
    floor=st.sampled_from(["", "st", "kl", "1", "12", "99"]),
    door=st.sampled_from(["", "tv", "th", "mf", "3", "1234"]),
    style=st.sampled_from(AddressStyle),
)
def test_standard_address_always_fits_34(
    *, road: str, short: str, number: str, floor: str, door: str, style: AddressStyle
) -> None:
    """Whatever the road, STANDARDADR is at most 34 characters and right-trimmed."""
    address = replace(
        ADDRESS, road_name=road, road_addressing_name=short, house_number=number,
        floor=floor, door=door,
    )  # fmt: skip
    text = standard_address(address, style)
    assert len(text) <= 34 and text == text.rstrip()


def test_addressing_name_abbreviates_to_34_characters() -> None:
    """Middle names become initials first, then all given names (project rule)."""
    short = Name("Hans", "Jensen", "Peter Valdemar Frederik Christian")
    assert addressing_name(short, NameFormat.LAST_FIRST) == "Jensen,Hans P. V. F. C."
    long = Name("Hans-Christian", "Christoffersen-Østergaard", "Valdemar Frederik")
    assert addressing_name(long, NameFormat.LAST_FIRST) == "Christoffersen-Østergaard,H. V. F."
    assert addressing_name(long, NameFormat.FIRST_LAST) == "H. V. F. Christoffersen-Østergaard"


_WORD = st.text(alphabet="abcdeæøåéüABCÆØÅ-", min_size=1, max_size=30)


@given(
    first=_WORD,
    middle=st.lists(_WORD, max_size=3),
    last=_WORD,
    style=st.sampled_from(NameFormat),
)
def test_addressing_name_always_fits_and_keeps_the_last_name_first(
    first: str, middle: list[str], last: str, style: NameFormat
) -> None:
    """Any name gives an ADRNVN of at most 34 that starts (LAST_FIRST) with the last name."""
    text = addressing_name(Name(first, last, " ".join(middle)), style)
    assert 0 < len(text) <= 34
    if style is NameFormat.LAST_FIRST:
        assert text.startswith(last[:34])
    else:
        assert text.startswith(first[0])


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Register]:
    """A 2,000-person register shared by the exhaustive tests."""
    path = tmp_path_factory.mktemp("register") / "register.db"
    generate(path, count=2000, seed=1)
    register = Register.open(path)
    yield register
    register.close()


def test_every_person_renders_encodes_and_decodes_back_equal(register: Register) -> None:
    """For every person: only PRIV types, at most 2908 bytes, decode(encode(x)) == x."""
    for pnr in register.pnrs():
        person = register.get(pnr)
        assert person is not None
        records = _answer(person)
        assert {r.type for r in records} <= PRIV_TYPES
        answer = LookupAnswer("1234", "0", "6", "Tk3nAbCd", "WXYZ0001", FejlNr.OK, records)
        data = answer.encode(Family.PRIV)
        assert len(data) <= 2908
        assert LookupAnswer.decode(data, Family.PRIV) == answer
