"""Copy every person of a legacy register into the modern store: ``cpr-gateway migrate``.

Reads the register in PNR order a page at a time and upserts in batches, one
transaction per batch: a person already there and unchanged is left alone, a
changed one is replaced, a new one is inserted. Running it again is therefore
safe and changes nothing; an interrupted run is finished by running it again.
Persons are never deleted from the store (a PNR that left the register is a
decision for an operator, not for a copy job). Subscriptions and users in the
store are not touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from cpr_services.store import ModernStore
from gateway.domain.person import Person

#: Persons per transaction: big enough to amortise the commit, small enough that a batch
#: (a few MB of JSON) stays cheap in memory and an interrupted run loses little.
BATCH_SIZE = 1000


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a migration did; ``read == inserted + updated + unchanged``."""

    read: int
    inserted: int
    updated: int
    unchanged: int
    #: Persons in the store afterwards (more than ``read`` if others were there before).
    stored: int
    schema_version: int


class PersonSource(Protocol):
    """A legacy register as the migration reads it (the emulator's register file is one)."""

    @property
    def meta(self) -> Mapping[str, str]:
        """Where the register came from (seed, size…), kept in the store as ``source.*``."""
        ...

    def count(self) -> int:
        """Number of persons."""
        ...

    def iter_persons(self, page: int = ...) -> Iterator[Person]:
        """Every person, ``page`` at a time."""
        ...


def migrate(
    register: PersonSource,
    store_path: str | Path,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
) -> MigrationReport:
    """Copy every person of ``register`` into the store at ``store_path``.

    The store is created (and its schema migrated) when needed. ConfigError when it
    cannot be opened; ``progress`` shows a tqdm bar on stderr.
    """
    store = ModernStore.open(store_path)
    try:
        return _copy(register, store, progress, batch_size)
    finally:
        store.close()


def _copy(register: PersonSource, store: ModernStore, progress: bool, size: int) -> MigrationReport:
    read = inserted = updated = unchanged = 0
    with tqdm(total=register.count(), unit=" persons", disable=not progress) as bar:
        for batch in _batches(register.iter_persons(page=size), size):
            counts = store.upsert(batch)
            read += len(batch)
            inserted += counts.inserted
            updated += counts.updated
            unchanged += counts.unchanged
            bar.update(len(batch))
    store.set_meta((f"source.{key}", value) for key, value in sorted(register.meta.items()))
    return MigrationReport(
        read, inserted, updated, unchanged, store.count(), store.schema_version()
    )


def _batches(persons: Iterable[Person], size: int) -> Iterator[list[Person]]:
    batch: list[Person] = []
    for person in persons:
        batch.append(person)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
