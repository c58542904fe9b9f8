"""Sealed values: they open with the shadow key that sealed them, in their own row and side."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.shadow.sealing import CLEAR, NO_KEY, OTHER_KEY, SEALED, RowContext, Sealer, reveal

KEY = b"k" * 32
ROW = RowContext("lookups", "shadow", "lookup", "mainframe", "persons-v2", "001", "NAVN", "p:1")


def test_a_value_opens_with_any_sealer_of_the_same_key() -> None:
    """Each sealer (each gateway process) has a data key of its own; a reader with the shadow
    key opens every one of them, and the text stored is not the value."""
    first, second = Sealer(KEY), Sealer(KEY)
    sealed = first.seal("Ærøsen,Anne", ROW.associated("primary"))
    assert "Ærøsen" not in sealed
    assert second.open(sealed, ROW.associated("primary")) == "Ærøsen,Anne"
    again = second.seal("Ærøsen,Anne", ROW.associated("primary"))
    assert again != sealed  # another data key and nonce: equal values do not look equal
    assert first.open(again, ROW.associated("primary")) == "Ærøsen,Anne"


@pytest.mark.parametrize(
    "change",
    ["side", "row", "key", "truncated", "altered", "not base64"],
)
def test_a_value_out_of_place_or_altered_does_not_open(change: str) -> None:
    """Another side or row, another shadow key, or changed bytes: None, never an exception."""
    sealer = Sealer(KEY)
    sealed = sealer.seal("Nørregade 12", ROW.associated("primary"))
    where, opener = ROW.associated("primary"), sealer
    match change:
        case "side":
            where = ROW.associated("candidate")
        case "row":
            where = replace(ROW, field="EFTERNVN").associated("primary")
        case "key":
            opener = Sealer(b"o" * 32)
        case "truncated":
            sealed = sealed[:20]
        case "altered":
            sealed = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
        case _:
            sealed = "not base64 at all!"
    assert opener.open(sealed, where) is None


def test_reveal_says_what_stands_in_a_values_place() -> None:
    """Clear rows as they are; sealed ones opened, or said to be encrypted."""
    sealed = Sealer(KEY).seal("Nørregade 12", ROW.associated("primary"))
    where = ROW.associated("primary")
    assert reveal("as stored", CLEAR, where, None) == ("as stored", True)
    assert reveal(sealed, SEALED, where, Sealer(KEY)) == ("Nørregade 12", True)
    assert reveal(sealed, SEALED, where, None) == (NO_KEY, False)
    assert reveal(sealed, SEALED, where, Sealer(b"o" * 32)) == (OTHER_KEY, False)
    assert repr(Sealer(KEY)) == "Sealer(key=<redacted>)"
