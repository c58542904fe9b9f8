"""The register's model ⇄ the cpr.v1 messages: Person and Task losslessly, and the code tables.

``to_person(to_proto(p)) == p`` for every person; how, field by field, is
:mod:`gateway.cprv1.walk`. Both shapes are compared once, at import: a field, enum member
or type on one side without its counterpart raises, so the proto cannot fall silently
behind the model. A message that is not a valid person is a ``ValueError`` naming the
field, never its value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeAlias

from gateway.cprv1.pb.cpr.v1 import auth_pb2, person_pb2
from gateway.cprv1.walk import EnumTable, build, fill, plan
from gateway.domain.person import Person
from gateway.model import Family, FejlNr
from gateway.render.task import Task

#: Trailing metadata key of a failed AuthService call: a serialized ``AuthError``.
AUTH_ERROR_KEY = "cpr-auth-error-bin"

Outcome: TypeAlias = auth_pb2.AuthOutcome.ValueType
Transaction: TypeAlias = auth_pb2.Transaction.ValueType

#: The FEJLNR each AuthService outcome becomes on the CPR Direkte wire.
FEJLNR_OF_OUTCOME: Mapping[Outcome, FejlNr] = {
    auth_pb2.AUTH_OUTCOME_OK: FejlNr.OK,
    auth_pb2.AUTH_OUTCOME_BAD_CREDENTIALS: FejlNr.BAD_CREDENTIALS,
    auth_pb2.AUTH_OUTCOME_PASSWORD_EXPIRED: FejlNr.PASSWORD_EXPIRED,
    auth_pb2.AUTH_OUTCOME_PASSWORD_RULES: FejlNr.PASSWORD_RULES,
    auth_pb2.AUTH_OUTCOME_CUSTOMER_UNKNOWN: FejlNr.CUSTOMER_UNKNOWN,
    auth_pb2.AUTH_OUTCOME_SESSION_INVALID: FejlNr.NEW_LOGON,
    auth_pb2.AUTH_OUTCOME_TRANSACTION_DENIED: FejlNr.TRANSACTION_DENIED,
    auth_pb2.AUTH_OUTCOME_ADDRESS_DENIED: FejlNr.IP_DENIED,
}


def to_proto(person: Person) -> person_pb2.Person:
    """The message carrying everything ``person`` holds."""
    message = person_pb2.Person()
    fill(plan(Person, person_pb2.Person.DESCRIPTOR), message, person)
    return message


def to_person(message: person_pb2.Person) -> Person:
    """The person ``message`` carries; ValueError when it is not a valid person."""
    person: Person = build(Person, person_pb2.Person.DESCRIPTOR, message)
    return person


def task_to_proto(task: Task) -> auth_pb2.Task:
    """The message form of a customer's task."""
    message = auth_pb2.Task()
    fill(plan(Task, auth_pb2.Task.DESCRIPTOR), message, task)
    return message


def to_task(message: auth_pb2.Task) -> Task:
    """The task ``message`` carries; ValueError when it is not a valid task."""
    task: Task = build(Task, auth_pb2.Task.DESCRIPTOR, message)
    return task


def transaction_of(family: Family) -> Transaction:
    """The proto Transaction of a transaction code the backend serves."""
    number: Transaction = _TRANSACTIONS.to_number[family]
    return number


def family_of(transaction: Transaction) -> Family | None:
    """The family a Transaction names; None for UNSPECIFIED (a code nobody is granted)."""
    return _TRANSACTIONS.from_number.get(transaction)


def auth_error(outcome: Outcome) -> tuple[tuple[str, bytes]]:
    """Trailing metadata that carries ``outcome`` with a failed call's status code."""
    return ((AUTH_ERROR_KEY, auth_pb2.AuthError(outcome=outcome).SerializeToString()),)


def auth_outcome(trailing: Iterable[tuple[str, str | bytes]] | None) -> Outcome | None:
    """The outcome a failed AuthService call carried in its trailing metadata, if any."""
    for key, value in trailing or ():
        if key == AUTH_ERROR_KEY and isinstance(value, bytes):
            return auth_pb2.AuthError.FromString(value).outcome
    return None


_TRANSACTIONS = EnumTable.of(Family, auth_pb2.Transaction.DESCRIPTOR)

# Compare the shapes now, at import, rather than at the first request.
plan(Person, person_pb2.Person.DESCRIPTOR)
plan(Task, auth_pb2.Task.DESCRIPTOR)
