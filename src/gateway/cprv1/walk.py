"""The walk that converts a frozen dataclass to its cpr.v1 message and back, by type hints.

Both sides use the same field names, so a dataclass is walked against the message
descriptor once (:func:`plan`, cached) and each field gets a dump and a load: text and
numbers are copied; enums go through tables built from the proto enums
(:class:`EnumTable`: value ``PREFIX_MEMBER``, e.g. ``STATUS_DEAD`` for ``Status.DEAD``);
dates and minute timestamps become ``Date`` / ``DateTime``; nested dataclasses nested
messages; tuples and sets repeated fields. ``None`` is an absent message field, and a
proto3 ``optional`` scalar is absent exactly when the model holds its default. A field
whose type admits :class:`~gateway.model.Irregular` is a ``*Value`` wrapper message: its
oneof holds the typed value or the irregular text, and an absent wrapper is the model's
None or default. A PNR (``str | Irregular`` on an optional string) is text on both sides:
a string that is not ten digits is the irregular text.

A field, enum member or type on one side without its counterpart raises when the plan is
made; a message that is not a valid value (a required field absent, an unspecified enum,
an impossible date) is a ``ValueError`` naming the field, never its value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import keyword
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.model import Irregular

#: Writes one field's model value into a message.
Dump = Callable[[Any, Any], None]
#: Reads one field's model value from a message.
Load = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Codec:
    """One field both ways, and how a generated builder reads it without a call.

    ``inline`` is a Python expression over the message ``m``; ``{name}`` in it stands
    for ``refs[name]``. None: the builder calls ``load``.
    """

    dump: Dump
    load: Load
    inline: str | None = None
    refs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Plan = tuple[tuple[str, _Codec], ...]

#: The cpr.v1 message a date or a minute timestamp travels as.
_MESSAGE_OF: Mapping[type, str] = {dt.date: "Date", dt.datetime: "DateTime"}

_SCALARS: Mapping[type, frozenset[int]] = {
    str: frozenset({FieldDescriptor.TYPE_STRING}),
    int: frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64}),
    bool: frozenset({FieldDescriptor.TYPE_BOOL}),
}


def fill(plan: Plan, message: Any, value: Any) -> None:
    for name, codec in plan:
        codec.dump(message, getattr(value, name))


def build(cls: type, descriptor: Descriptor, message: Any) -> Any:
    return _builder(cls, descriptor)(message)


@functools.cache
def _builder(cls: type, descriptor: Descriptor) -> Load:
    """A function building a ``cls`` from a message, generated from the plan.

    One call of ``cls`` with an expression per field, the way ``dataclasses`` writes
    ``__init__``: a gateway worker builds a person (~100 fields) per lookup, and a call
    per field was most of that time.
    """
    namespace: dict[str, Any] = {"cls": cls}
    arguments = []
    for index, (name, codec) in enumerate(plan(cls, descriptor)):
        refs = {**codec.refs, "load": codec.load}
        names = {ref: f"_{index}_{ref}" for ref in refs}
        namespace.update({names[ref]: value for ref, value in refs.items()})
        expression = codec.inline if codec.inline is not None else "{load}(m)"
        arguments.append(f"{name}={expression.format(**names)}")
    source = f"def build(m):\n    return cls({', '.join(arguments)})\n"
    exec(compile(source, f"<builder of {cls.__name__}>", "exec"), namespace)
    build: Load = namespace["build"]
    return build


@functools.cache
def plan(cls: type, descriptor: Descriptor) -> Plan:
    """How each field of dataclass ``cls`` maps onto ``descriptor``; raises on any mismatch."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    if names != set(descriptor.fields_by_name):
        diff = sorted(names ^ set(descriptor.fields_by_name))
        raise TypeError(f"{cls.__name__} and {descriptor.full_name} differ in {diff}")
    if not all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        raise TypeError(f"{cls.__name__}: a field name that is not an identifier")
    return tuple(
        (f.name, _codec(cls.__name__, f, hints[f.name], descriptor.fields_by_name[f.name]))
        for f in fields
    )


def _codec(owner: str, field: dataclasses.Field[Any], hint: Any, fd: FieldDescriptor) -> _Codec:
    """The codec of one field; TypeError when the two sides do not match."""
    where = f"{owner}.{field.name}"
    optional, irregular, inner = _unwrap(hint)
    if irregular:
        return _irregular_or(where, field, optional, inner, fd)
    repeated = fd.is_repeated
    if repeated != (typing.get_origin(inner) in (tuple, frozenset)):
        raise TypeError(f"{where}: repeated on one side only")
    if repeated:
        return _repeated(where, field.name, inner, fd)
    if inner in (dt.date, dt.datetime) or dataclasses.is_dataclass(inner):
        return _message(where, field, optional, inner, fd)
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        if fd.enum_type is None:
            raise TypeError(f"{where}: expected a proto enum")
        return _enum_field(where, field.name, EnumTable.of(inner, fd.enum_type))
    if inner not in _SCALARS or fd.type not in _SCALARS[inner]:
        raise TypeError(f"{where}: {inner!r} does not fit proto type {fd.type}")
    if optional and not fd.has_presence:
        raise TypeError(f"{where}: None needs a proto3 optional field")
    return _scalar(field, fd.has_presence)


def _unwrap(hint: Any) -> tuple[bool, bool, Any]:
    """(optional, irregular, X) for ``X``, ``X | None``, ``X | Irregular`` and both."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) not in (types.UnionType, typing.Union):
        return False, False, hint
    (inner,) = [arg for arg in args if arg not in (type(None), Irregular)]
    return type(None) in args, Irregular in args, inner


def _irregular_or(
    where: str, field: dataclasses.Field[Any], optional: bool, inner: Any, fd: FieldDescriptor
) -> _Codec:
    """A ``*Value`` wrapper: the typed value or the irregular text; absent is None or default."""
    name, default = field.name, field.default
    if inner is str and fd.type == FieldDescriptor.TYPE_STRING and fd.has_presence:
        return _pnr_or_irregular(field)
    put, get = _wrapped(where, inner, fd)

    def dump(message: Any, value: Any) -> None:
        if value is None or (value == default and not isinstance(value, Irregular)):
            return  # absent: the model's None or default
        sub = getattr(message, name)
        if isinstance(value, Irregular):
            sub.irregular = value.text
        else:
            put(sub, value)

    def load(message: Any) -> Any:
        if not message.HasField(name):
            if optional:
                return None
            if default is dataclasses.MISSING:
                raise ValueError(f"{where}: required, absent")
            return default
        sub = getattr(message, name)
        which = sub.WhichOneof("value")
        if which == "irregular":
            return Irregular(sub.irregular)
        if which is None:
            raise ValueError(f"{where}: a value wrapper holding nothing")
        return get(sub)

    return _Codec(dump, load)


def _pnr_or_irregular(field: dataclasses.Field[Any]) -> _Codec:
    """An optional string holding a PNR or, when not ten digits, the irregular text: an
    optional scalar (:func:`_scalar`) whose text is told apart when it is read."""
    plain, name = _scalar(field, presence=True), field.name

    def dump(message: Any, value: Any) -> None:
        if isinstance(value, Irregular):
            setattr(message, name, value.text)
        else:
            plain.dump(message, value)

    def load(message: Any) -> Any:
        text: str = plain.load(message)
        return text if len(text) == 10 and text.isascii() and text.isdigit() else Irregular(text)

    return _Codec(dump, load)


def _wrapped(where: str, inner: Any, fd: FieldDescriptor) -> tuple[Dump, Load]:
    """(write the typed value into a wrapper, read it back) after checking the wrapper's shape."""
    wrapper = fd.message_type
    oneof = wrapper.oneofs_by_name.get("value") if wrapper is not None else None
    if oneof is None or [f.name for f in oneof.fields][1:] != ["irregular"]:
        raise TypeError(f"{where}: expected a value wrapper with oneof value {{…, irregular}}")
    typed = oneof.fields[0]
    if inner in (dt.date, dt.datetime):
        expected = _MESSAGE_OF[inner]
        if typed.message_type is None or typed.message_type.name != expected:
            raise TypeError(f"{where}: expected {expected} in the wrapper")
        fill, build = _message_codec(where, inner, typed.message_type)
        typed_name = typed.name

        def put_message(sub: Any, value: Any) -> None:
            fill(getattr(sub, typed_name), value)

        return put_message, lambda sub: build(getattr(sub, typed_name))
    if inner not in _SCALARS or typed.type not in _SCALARS[inner]:
        raise TypeError(f"{where}: {inner!r} does not fit the wrapper's {typed.name}")
    scalar = typed.name
    return (lambda sub, value: setattr(sub, scalar, value)), (lambda sub: getattr(sub, scalar))


def _scalar(field: dataclasses.Field[Any], presence: bool) -> _Codec:
    name, default = field.name, field.default
    if not presence:
        return _Codec(lambda m, v: setattr(m, name, v), lambda m: getattr(m, name), f"m.{name}")

    def dump(message: Any, value: Any) -> None:
        if value != default:  # the default is what an absent optional field means
            setattr(message, name, value)

    def load(message: Any) -> Any:
        if message.HasField(name):
            return getattr(message, name)
        if default is dataclasses.MISSING:
            raise ValueError(f"{name}: required, absent")
        return default

    if default is dataclasses.MISSING:
        return _Codec(dump, load)
    inline = f"(m.{name} if m.HasField({name!r}) else {{default}})"
    return _Codec(dump, load, inline, {"default": default})


def _message(
    where: str, field: dataclasses.Field[Any], optional: bool, inner: Any, fd: FieldDescriptor
) -> _Codec:
    name = field.name
    expected = _MESSAGE_OF.get(inner, inner.__name__)
    if fd.message_type is None or fd.message_type.name != expected:
        raise TypeError(f"{where}: expected message {expected}")
    fill, build = _message_codec(where, inner, fd.message_type)

    def dump(message: Any, value: Any) -> None:
        if value is not None:
            sub = getattr(message, name)
            sub.SetInParent()  # present even when every field inside is a default
            fill(sub, value)

    def load(message: Any) -> Any:
        if message.HasField(name):
            return build(getattr(message, name))
        if optional:
            return None
        raise ValueError(f"{where}: required, absent")

    if not optional:
        return _Codec(dump, load)
    inline = f"({{build}}(m.{name}) if m.HasField({name!r}) else None)"
    return _Codec(dump, load, inline, {"build": build})


def _message_codec(where: str, inner: Any, descriptor: Descriptor) -> tuple[Dump, Load]:
    """(fill message from value, build value from message) for a nested type."""
    if inner is dt.date:
        return _fill_date, functools.partial(_build_date, where)
    if inner is dt.datetime:
        return _fill_datetime, functools.partial(_build_datetime, where)
    return functools.partial(fill, plan(inner, descriptor)), _builder(inner, descriptor)


def _repeated(where: str, name: str, inner: Any, fd: FieldDescriptor) -> _Codec:
    origin = typing.get_origin(inner)
    item: Any = typing.get_args(inner)[0]
    collect: Callable[[Iterable[Any]], Any] = frozenset if origin is frozenset else tuple
    order: Callable[[Any], Iterable[Any]] = sorted if origin is frozenset else iter
    if isinstance(item, type) and dataclasses.is_dataclass(item):
        if fd.message_type is None or fd.message_type.name != item.__name__:
            raise TypeError(f"{where}: expected repeated {item.__name__}")
        fill, build = _message_codec(where, item, fd.message_type)

        def dump_messages(message: Any, value: Any) -> None:
            container = getattr(message, name)
            for entry in order(value):
                fill(container.add(), entry)

        def load_messages(message: Any) -> Any:
            return collect(map(build, getattr(message, name)))

        inline = f"{{collect}}(map({{build}}, m.{name}))"
        return _Codec(dump_messages, load_messages, inline, {"collect": collect, "build": build})
    if item not in _SCALARS or fd.type not in _SCALARS[item]:
        raise TypeError(f"{where}: items {item!r} do not fit proto type {fd.type}")

    def dump(message: Any, value: Any) -> None:
        getattr(message, name).extend(order(value))  # a set goes over the wire sorted

    def load(message: Any) -> Any:
        return collect(getattr(message, name))

    return _Codec(dump, load, f"{{collect}}(m.{name})", {"collect": collect})


def _enum_field(where: str, name: str, table: EnumTable) -> _Codec:
    def dump(message: Any, value: Any) -> None:
        setattr(message, name, table.to_number[value])

    def load(message: Any) -> Any:
        number = getattr(message, name)
        member = table.from_number.get(number)
        if member is None:
            raise ValueError(f"{where}: unspecified or unknown value {number}")
        return member

    return _Codec(dump, load)


def _fill_date(message: Any, value: dt.date) -> None:
    message.year, message.month, message.day = value.year, value.month, value.day


def _build_date(where: str, message: Any) -> dt.date:
    try:
        return dt.date(message.year, message.month, message.day)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _fill_datetime(message: Any, value: dt.datetime) -> None:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError("register timestamps are naive and carry minutes only")
    message.year, message.month, message.day = value.year, value.month, value.day
    message.hour, message.minute = value.hour, value.minute


def _build_datetime(where: str, message: Any) -> dt.datetime:
    try:
        return dt.datetime(message.year, message.month, message.day, message.hour, message.minute)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class EnumTable:
    """A Python enum and a proto enum matched by name: ``Status.DEAD`` ⇄ ``STATUS_DEAD``."""

    to_number: Mapping[Any, Any]
    from_number: Mapping[int, Any]

    @classmethod
    def of(cls, kind: type[enum.Enum], descriptor: EnumDescriptor) -> EnumTable:
        """The table for ``kind``; TypeError when a member has no proto value."""
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", descriptor.name).upper() + "_"
        missing = [m.name for m in kind if prefix + m.name not in descriptor.values_by_name]
        if missing:
            raise TypeError(f"{descriptor.full_name} lacks {[prefix + n for n in missing]}")
        to_number = {m: descriptor.values_by_name[prefix + m.name].number for m in kind}
        return cls(to_number, {number: member for member, number in to_number.items()})
