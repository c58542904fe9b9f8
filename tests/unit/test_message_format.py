"""The stored messages' fingerprint: what a stored Person is made of, and nothing else.

person.proto also holds PersonService and its request and response messages; adding an
RPC there (as the StreamReadPersons experiment did) made every stored message stale, and
the services answered from JSON at ~40% more CPU until the store was migrated again.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor

from cpr_services.store import person_schema
from gateway.cprv1.pb.cpr.v1 import auth_pb2, person_pb2


def _person_in_a_pool(
    edit_person_proto: Callable[[descriptor_pb2.FileDescriptorProto], None],
) -> Descriptor:
    """cpr.v1.Person from a fresh pool in which person.proto was changed by the callback."""
    pool = descriptor_pool.DescriptorPool()
    for module in (auth_pb2, person_pb2):  # person.proto imports auth.proto
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        if module is person_pb2:
            edit_person_proto(file)
        pool.Add(file)
    return pool.FindMessageTypeByName("cpr.v1.Person")


def test_it_covers_the_person_and_every_type_inside_it_only() -> None:
    names = set(person_schema())
    assert {"cpr.v1.Person", "cpr.v1.Name", "cpr.v1.DanishAddress", "cpr.v1.Date"} <= names
    assert {"cpr.v1.CivilStatus", "cpr.v1.Sex"} <= names  # enums too
    assert not any("Request" in name or "Response" in name for name in names)


def test_a_new_rpc_in_person_proto_leaves_it_unchanged() -> None:
    def add_rpc(file: descriptor_pb2.FileDescriptorProto) -> None:
        [service] = file.service
        service.method.add(
            name="StreamReadPersons",
            input_type=".cpr.v1.BatchReadPersonsRequest",
            output_type=".cpr.v1.BatchReadPersonsResponse",
            client_streaming=True,
            server_streaming=True,
        )

    assert person_schema(_person_in_a_pool(add_rpc)) == person_schema()


def test_a_change_inside_a_person_changes_it() -> None:
    def add_field_to_name(file: descriptor_pb2.FileDescriptorProto) -> None:
        [name] = [message for message in file.message_type if message.name == "Name"]
        name.field.add(
            name="nickname",
            number=999,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )

    changed = person_schema(_person_in_a_pool(add_field_to_name))
    assert changed.keys() == person_schema().keys()
    assert changed["cpr.v1.Name"] != person_schema()["cpr.v1.Name"]
