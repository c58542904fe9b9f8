"""The modern store: persons, subscriptions and users in SQLite or PostgreSQL, schema by migration.

:meth:`ModernStore.open` takes a file path (SQLite, the default: embedded,
``var/modern.sqlite``) or a ``postgresql://`` DSN (the database must exist;
the store creates its tables in the DSN's current schema).

Schema (``cpr_services.schema``): pragmatic, not fully normalised. ``person``
has one row per PNR with typed, indexed columns for what an operator or a later
service selects on (``status``, ``sex``, ``birth_date``, ``municipality``,
``post_code``, ``replaced_by``) and the whole person as JSON in ``data``
(:meth:`Person.to_json`, the register's lossless form). ``message`` holds the same
person as the serialized ``cpr.v1.Person`` the services answer with, written
alongside ``data``, so that a read is one parse in C instead of JSON to model to
message in Python (the larger part of a read's CPU in the services; docs/benchmarks.md,
"Where the time goes, and what was changed": modern route, after batching);
``message_format`` is a fingerprint of person.proto and the conversion code it was
written with. A row whose fingerprint is not this program's (either changed since, or
written before schema version 4) is answered from ``data``, exactly as before, until the
next migration run rewrites it. Why not one table per
part (addresses, relations, protections …): the only read the services make is
"everything about one PNR", which would then be a dozen joins or queries per
lookup, and the nested, mostly-empty parts of a person (28 fields, 17 optional
sub-records) would need some twenty tables whose only consumer reassembles them
at once. A column can be promoted out of ``data`` by a migration when a query
needs it.

``subscription``, ``user`` and ``password_history`` have the emulator's columns,
so the emulator's :class:`~cpr_accounts.state.StateStore` (password digests,
history, failure counts, locks; subscriptions) works on this database unchanged
and the modern services apply exactly the emulator's rules.

``session_token`` holds the services' sessions (:meth:`ModernStore.sessions`): kept
here rather than in each process, so that every replica on this store accepts a
token another issued, and a restart logs nobody out.

Foreign errors stop here: a database that cannot be opened or migrated is a
:class:`ConfigError`; a failed read or subscription change later is
:class:`BackendUnavailable`. Calls are synchronous and short (one indexed
statement; on PostgreSQL one round trip); the connection belongs to the thread
that opened it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor

from cpr_accounts.state import StateStore
from cpr_accounts.stored_tokens import StoredSessions
from cpr_accounts.subscriptions import Subscriptions
from cpr_accounts.tokens import MAX_TOKENS
from cpr_services.schema import MIGRATIONS, refuse_foreign, upgrade, version
from gateway.cprv1 import convert, walk
from gateway.cprv1.pb.cpr.v1 import person_pb2
from gateway.domain.person import Person
from gateway.errors import BackendUnavailable, ConfigError
from gateway.model import Irregular
from gateway.storage.database import Database, DatabaseError, SqliteDatabase
from gateway.storage.postgres import PostgresDatabase, is_dsn, redact

__all__ = ["DEFAULT_PATH", "MIGRATIONS", "ModernStore", "UpsertCounts", "upgrade"]

#: Where ``cpr-gateway backend`` and ``cpr-gateway migrate`` keep the store by default.
DEFAULT_PATH = Path("var/modern.sqlite")

#: How long to wait for another process's write lock (a migration running alongside the
#: server) before an operation fails, in milliseconds.
_BUSY_TIMEOUT_MS = 5000


def person_schema(person: Descriptor = person_pb2.Person.DESCRIPTOR) -> dict[str, bytes]:
    """Every message and enum type a stored ``cpr.v1.Person`` is made of, by full name, each
    as its serialized descriptor.

    Only these: the services and their request and response messages share person.proto,
    and adding an RPC there must not make every stored message stale.
    """
    types: dict[str, bytes] = {}

    def visit(message: Descriptor) -> None:
        if message.full_name in types:
            return
        as_proto = descriptor_pb2.DescriptorProto()
        message.CopyToProto(as_proto)  # nested types and enums included
        types[message.full_name] = as_proto.SerializeToString()
        for field in message.fields:
            if field.message_type is not None:
                visit(field.message_type)
            if field.enum_type is not None and field.enum_type.full_name not in types:
                enum = descriptor_pb2.EnumDescriptorProto()
                field.enum_type.CopyToProto(enum)
                types[field.enum_type.full_name] = enum.SerializeToString()

    visit(person)
    return types


#: What the stored messages were made with: the Person message's types (person_schema) and
#: the code that fills them (gateway.cprv1.convert and .walk). A change to either changes it,
#: and rows written before are then read from ``data`` (correct, only slower) until the next
#: migration run rewrites them.
MESSAGE_FORMAT = hashlib.sha256(
    b"".join(serialized for _name, serialized in sorted(person_schema().items()))
    + Path(convert.__file__).read_bytes()
    + Path(walk.__file__).read_bytes()
).hexdigest()[:16]
_INSERT = (
    "INSERT INTO person (pnr, status, sex, birth_date, municipality, post_code, replaced_by,"
    " data, message, message_format)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pnr) DO NOTHING"
)
_UPDATE = (
    "UPDATE person SET status = ?, sex = ?, birth_date = ?, municipality = ?, post_code = ?,"
    " replaced_by = ?, data = ?, message = ?, message_format = ?"
    " WHERE pnr = ? AND (data <> ? OR coalesce(message_format, '') <> ?)"
)
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_Row = tuple[str, str, str, str, int | None, int | None, str | None, str, bytes, str]


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """What one :meth:`ModernStore.upsert` did."""

    inserted: int
    updated: int
    unchanged: int


class ModernStore:
    """The store of the modern services; open it with :meth:`open`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: Users, password history and locks, with the emulator's rules' storage.
        self.state = StateStore(db)
        #: PNR subscriptions.
        self.subscriptions: Subscriptions = self.state.subscriptions

    @classmethod
    def open(cls, location: str | Path = DEFAULT_PATH) -> ModernStore:
        """Open the store at a file path or ``postgresql://`` DSN, applying pending migrations.

        A SQLite file (and its directory) is created when missing. ConfigError when
        the database cannot be reached, is something else, or is newer than this program.
        """
        name, db = _connect(location)
        try:
            refuse_foreign(db, name)
            if db.dialect == "sqlite":
                db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                # WAL: the services keep reading while a migration writes.
                db.execute("PRAGMA journal_mode = WAL")
            upgrade(db)
        except DatabaseError as exc:
            db.close()
            raise ConfigError([f"store: {name} cannot be used as a modern store ({exc})"]) from None
        except ConfigError:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        self._db.close()

    def sessions(self, idle: dt.timedelta, limit: int = MAX_TOKENS) -> StoredSessions:
        """The services' tokens in this store, expiring after ``idle`` without use; at most
        ``limit`` are kept."""
        return StoredSessions(self._db, idle, limit)

    def schema_version(self) -> int:
        """The schema version the database is at."""
        return version(self._db)

    def get(self, pnr: str) -> Person | None:
        """The person with ``pnr``, or None; ValueError when the stored row does not decode."""
        row = self._read("SELECT data FROM person WHERE pnr = ?", (pnr,))
        return Person.from_json(row[0][0]) if row else None

    def person_message(self, pnr: str) -> bytes | None:
        """The person with ``pnr`` as a serialized cpr.v1.Person, or None.

        The stored message when it has this program's format, else converted from ``data``
        (ValueError when that does not decode).
        """
        row = self._read("SELECT message, message_format, data FROM person WHERE pnr = ?", (pnr,))
        if not row:
            return None
        message, written_as, data = row[0]
        if message is not None and written_as == MESSAGE_FORMAT:
            return bytes(message)
        return convert.to_proto(Person.from_json(data)).SerializeToString()

    def contains(self, pnr: str) -> bool:
        """True when a person with ``pnr`` is stored."""
        return bool(self._read("SELECT 1 FROM person WHERE pnr = ?", (pnr,)))

    def count(self) -> int:
        """Number of persons."""
        return int(self._read("SELECT count(*) FROM person", ())[0][0])

    def stale_messages(self) -> int:
        """Persons whose stored message this program does not serve (none yet, or written with
        another MESSAGE_FORMAT): they are answered from ``data`` until the next migration run.

        The same test as the migration's rewrite (``_UPDATE``), so that what is counted here
        is exactly what a migration run rewrites, and a store never looks stale after one.
        """
        sql = "SELECT count(*) FROM person WHERE coalesce(message_format, '') <> ?"
        return int(self._read(sql, (MESSAGE_FORMAT,))[0][0])

    def meta(self) -> dict[str, str]:
        """Facts about the store's content (e.g. the register it was migrated from)."""
        return {str(k): str(v) for k, v in self._read("SELECT key, value FROM meta", ())}

    def set_meta(self, items: Iterable[tuple[str, str]]) -> None:
        """Record facts in ``meta``, replacing earlier values of the same keys."""
        with self._db.transaction():
            self._db.executemany(_SET_META, items)

    def upsert(self, persons: Sequence[Person]) -> UpsertCounts:
        """Store ``persons`` in one transaction: new ones inserted, changed ones replaced."""
        rows = [_row(person) for person in persons]
        with self._db.transaction():
            inserted = self._db.executemany(_INSERT, rows)
            changes = [(*row[1:], row[0], row[7], row[9]) for row in rows]
            updated = self._db.executemany(_UPDATE, changes)
        return UpsertCounts(inserted, updated, len(rows) - inserted - updated)

    def subscribe(self, customer: int, pnr: str, now: dt.datetime) -> bool:
        """Subscribe ``customer`` to ``pnr``, committed; False when it already was."""
        try:
            return self.subscriptions.add(customer, pnr, now)
        except DatabaseError as exc:
            raise BackendUnavailable(f"modern store write failed: {exc}") from None

    def unsubscribe(self, customer: int, pnr: str) -> bool:
        """End the subscription, committed; False when there was none."""
        try:
            return self.subscriptions.remove(customer, pnr)
        except DatabaseError as exc:
            raise BackendUnavailable(f"modern store write failed: {exc}") from None

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).rows
        except DatabaseError as exc:
            raise BackendUnavailable(f"modern store read failed: {exc}") from None


def _connect(location: str | Path) -> tuple[str, Database]:
    """The database at ``location`` and how messages name it (a DSN without its password)."""
    name = redact(str(location))
    try:
        if is_dsn(location):
            return name, PostgresDatabase(str(location))
        return name, SqliteDatabase.open(Path(location))
    except DatabaseError as exc:
        raise ConfigError([f"store: cannot open {name}: {exc}"]) from None


def _row(person: Person) -> _Row:
    address = person.address
    return (
        person.pnr,
        person.status.value,
        person.sex.value,
        person.birth_date.isoformat(),
        _code(address.municipality) if address else None,
        _code(address.post_code) if address else None,
        person.replaced_by or None,
        person.to_json(),
        convert.to_proto(person).SerializeToString(),
        MESSAGE_FORMAT,
    )


def _code(value: int | Irregular) -> int | None:
    """A code for its indexed column; a blank one (spec §10) is none there (``data`` keeps it)."""
    return None if isinstance(value, Irregular) else value
