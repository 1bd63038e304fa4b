"""The mirror of a msgspec Struct with nested Structs: its send check, in C.

``send_message()`` must never put a frame on the wire that the declared type
does not promise (issue 14). msgspec does not check field types when you build
or mutate a Struct, so lilya's check for msgspec types is a decode of the
encoded frame into the declared type. For a message with nested Structs (a
room and twenty items, say) that decode builds every nested Struct and every
string again, and costs more than the encoding itself.

A Struct whose fields are all *plain* (``str``, ``int``, ``float``, ``bool``,
a nested Struct of plain fields, ``Optional``, ``list`` and ``dict`` with
``str`` keys of these) gets instead, once, a *mirror*: a Struct of the same
fields and types, every field required, floats bounded to the finite ones
(JSON has no NaN or infinity; msgspec would write ``null``), no GC tracking.
Per message, ``msgspec.convert(message, mirror, from_attributes=True)`` reads
every field of the message and of each nested Struct and checks its value,
without building strings; the frame is then the message's own encoding.
Anything else (constraints, ``Literal`` and union fields, dates, a
``__post_init__``, which may refuse what the types allow, a tree) gets no
mirror and keeps the decode.

The mirror only ever says yes to a message whose frame the decode would take:
it reads the values the encoder writes, checked against the declared types.
What it refuses goes to the decode, which has the last word (an ``int`` key in
a ``dict[str, ...]`` is written as a string and decodes) and words the error.
A Struct with no nested Struct gets no mirror: reading its attributes costs
more than decoding its small frame (``docs/benchmarks.md``, "Typed messages").
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import msgspec
from msgspec import inspect as msgspec_inspect

__all__ = ["FINITE", "struct_mirror"]

#: A float JSON can carry: NaN fails both bounds, each infinity one (also
#: the pydantic mirrors' float, lilya/_pydantic_send.py).
FINITE = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


class _Builder:
    # Builds mirror types; a Struct met again inside itself (a tree) has none.
    def __init__(self) -> None:
        self.building: set[Any] = set()
        self.nested = False


def struct_mirror(cls: Any) -> Any:
    """Return the mirror Struct of the msgspec Struct *cls*, or ``None``.

    ``None``: *cls* has no nested Struct (its frame is cheaper to decode), or
    a field that is not plain.
    """
    builder = _Builder()
    mirror = _mirror(msgspec_inspect.type_info(cls), builder)
    return mirror if builder.nested else None


def _mirror(info: Any, builder: _Builder) -> Any:
    cls = info.cls
    if hasattr(cls, "__post_init__") or cls in builder.building:
        return None
    builder.building.add(cls)
    fields = []
    for field in info.fields:
        kind = _kind(field.type, builder)
        if kind is None:
            return None
        fields.append((field.name, kind))
    builder.building.discard(cls)
    return msgspec.defstruct(f"{cls.__name__}Mirror", fields, gc=False)


def _kind(info: Any, builder: _Builder) -> Any:
    if isinstance(info, msgspec_inspect.Metadata):
        info = info.type  # a title or a description: no constraint
    if isinstance(info, msgspec_inspect.UnionType):
        others = [
            member for member in info.types if not isinstance(member, msgspec_inspect.NoneType)
        ]
        if len(others) != 1:
            return None
        inner = _kind(others[0], builder)
        return None if inner is None else inner | None
    if isinstance(info, msgspec_inspect.ListType | msgspec_inspect.DictType):
        if info.min_length is not None or info.max_length is not None:
            return None
        if isinstance(info, msgspec_inspect.ListType):
            item = _kind(info.item_type, builder)
            return None if item is None else list[item]  # type: ignore[valid-type]  # built at run time
        if not isinstance(info.key_type, msgspec_inspect.StrType):
            return None
        key = _kind(info.key_type, builder)
        value = _kind(info.value_type, builder)
        return None if key is None or value is None else dict[key, value]  # type: ignore[valid-type]  # built at run time
    if isinstance(info, msgspec_inspect.StructType):
        builder.nested = True
        return _mirror(info, builder)
    if isinstance(info, msgspec_inspect.BoolType):
        return bool
    if isinstance(info, msgspec_inspect.StrType):
        plain = info.min_length is None and info.max_length is None and info.pattern is None
        return str if plain else None
    if isinstance(info, msgspec_inspect.IntType | msgspec_inspect.FloatType):
        bounds = (info.gt, info.ge, info.lt, info.le, info.multiple_of)
        if any(bound is not None for bound in bounds):
            return None
        return int if isinstance(info, msgspec_inspect.IntType) else FINITE
    return None
