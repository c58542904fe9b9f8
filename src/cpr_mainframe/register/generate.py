"""Generate a synthetic CPR register file, deterministically from a seed.

The register opens with a *showcase*: one household per case the wire contract
cares about (every STATUS and CIVST, each protection, credit warnings now and in
the future, replaced PNRs, a father whose OFF4 answer overflows 2880 bytes …),
so any register of 2,000 persons or more holds them all. Random households fill
the rest. A share of persons then carry one of the real mainframe's quirks
(:mod:`~cpr_mainframe.register.quirks`, spec §10). Links (spouse, parents, children,
custody, guardian, PNRGAELD) stay inside a household, so each points at a real person in
the register.

The file is built under a temporary name and renamed into place at the end:
a half-built register is never opened.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from cpr_mainframe.register import households as hh
from cpr_mainframe.register import quirks
from cpr_mainframe.register.draw import REGISTER_DATE, Draw
from cpr_mainframe.register.store import INDEXES, INSERT_META, INSERT_PERSON, SCHEMA
from gateway.domain.person import Person, Status
from gateway.storage.files import private_file

#: Bumped whenever the same seed would give a different register.
GENERATOR_VERSION = "4"

#: Rows per executemany: large enough to amortise the call, small enough to keep memory flat.
_BATCH = 5000

_p = functools.partial
_FEATURES = (
    "name_address", "local_directory", "marketing", "ended_protection", "credit",
    "future_credit", "contact", "guardian", "notes", "conditions", "elections", "refs",
)  # fmt: skip
_SHOWCASE: tuple[hh.Household, ...] = (
    _p(hh.couple, partnership=False, children=3, stepchild=True, minors=True),
    _p(hh.couple, partnership=False, children=3, ward=True, separated=True),
    _p(hh.couple, partnership=True, children=2, minors=True),
    _p(hh.couple, partnership=True, children=0),
    _p(hh.divorced),
    _p(hh.divorced, dissolved=True),
    _p(hh.widowed),
    _p(hh.widowed, partnership=True),
    _p(hh.dead, first_year=1880, last_year=1899),
    _p(hh.dead, first_year=1937, last_year=1957),
    _p(hh.emigrated),
    _p(hh.emigrated, together=True),
    _p(hh.no_residence),
    _p(hh.annulled),
    _p(hh.disappeared),
    _p(hh.single, status=Status.RESIDENT_SPECIAL_ROAD),
    _p(hh.single, status=Status.GREENLAND),
    _p(hh.single, status=Status.GREENLAND_SPECIAL_ROAD),
    _p(hh.duplicate),
    _p(hh.changed, sex_change=True),
    _p(hh.changed, sex_change=False),
    _p(hh.large_family, children=90),
    *(_p(hh.single, force=frozenset({feature})) for feature in _FEATURES),
    _p(hh.single, force=frozenset({"name_address", "contact", "guardian", "future_credit"})),
)

#: (weight, household) for the random fill; weights are households, not persons.
_FILL: tuple[tuple[float, hh.Household], ...] = (
    (34.0, hh.couple),
    (34.0, hh.single),
    (7.0, hh.divorced),
    (0.5, _p(hh.divorced, dissolved=True)),
    (5.0, hh.widowed),
    (0.3, _p(hh.widowed, partnership=True)),
    (6.0, hh.dead),
    (2.0, hh.emigrated),
    (1.0, _p(hh.emigrated, together=True)),
    (1.0, hh.no_residence),
    (0.3, hh.annulled),
    (0.3, hh.disappeared),
    (0.5, _p(hh.single, status=Status.RESIDENT_SPECIAL_ROAD)),
    (1.0, _p(hh.single, status=Status.GREENLAND)),
    (0.2, _p(hh.single, status=Status.GREENLAND_SPECIAL_ROAD)),
    (0.3, hh.duplicate),
    (0.3, hh.changed),
    (0.005, hh.large_family),
)


def persons(count: int, seed: int = 1) -> Iterator[Person]:
    """Exactly ``count`` persons: the showcase first (as far as it fits), then random ones.

    Without quirks: :func:`generate` lays them on (:func:`quirks.apply`).
    """
    d = Draw(seed)
    weights = [w for w, _ in _FILL]
    kinds = [k for _, k in _FILL]
    showcase = iter(_SHOWCASE)
    left = count
    while left > 0:
        household = next(showcase, None) or d.rng.choices(kinds, weights)[0]
        group = household(d)
        if len(group) > left:  # never cut a household: its links must stay whole
            group = hh.single(d)
        yield from group
        left -= len(group)


def generate(
    path: Path,
    count: int = 10_000,
    seed: int = 1,
    progress: bool = False,
    quirk_share: float = quirks.DEFAULT_SHARE,
) -> None:
    """Write a register of ``count`` persons to ``path``, replacing any file there;
    about ``quirk_share`` of them carry a quirk of the real mainframe (spec §10)."""
    if count < 1:
        raise ValueError(f"count must be positive, not {count}")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    try:
        # Created 0600 before SQLite opens it (SQLite would make it 0644); the rename keeps it.
        with contextlib.closing(sqlite3.connect(private_file(temp))) as db:
            _build(db, count, seed, progress, quirk_share)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _build(
    db: sqlite3.Connection, count: int, seed: int, progress: bool, quirk_share: float
) -> None:
    # The temp file is thrown away on any failure, so durability buys nothing here.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    for statement in SCHEMA:
        db.execute(statement)
    meta = {
        "seed": str(seed),
        "count": str(count),
        "generator_version": GENERATOR_VERSION,
        "register_date": REGISTER_DATE.date().isoformat(),
    }
    db.executemany(INSERT_META, sorted(meta.items()))
    with tqdm(total=count, disable=not progress, unit="person") as bar:
        batch: list[tuple[str, str, str]] = []
        for person in quirks.apply(persons(count, seed), seed, quirk_share):
            batch.append((person.pnr, person.status.value, person.to_json()))
            if len(batch) == _BATCH:
                db.executemany(INSERT_PERSON, batch)
                bar.update(len(batch))
                batch.clear()
        db.executemany(INSERT_PERSON, batch)
        bar.update(len(batch))
    for statement in INDEXES:
        db.execute(statement)
    db.commit()
