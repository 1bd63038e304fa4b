"""The mirror check of msgspec Structs with nested Structs (lilya._struct_mirror).

Every refusal here is a MessageTypeError and nothing encoded; every frame is
what msgspec writes for the message, and decodes as the declared type.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

import msgspec
import pytest

from lilya._struct_mirror import struct_mirror
from lilya.typed import MessageCodec, MessageTypeError


class Item(msgspec.Struct):
    nick: str
    ts: float
    count: int = 0
    seen: bool = False


class Batch(msgspec.Struct, tag="batch"):
    room: str
    items: list[Item]
    first: Item | None = None
    tags: list[str] = []
    scores: dict[str, float] = {}


class Flat(msgspec.Struct, tag="flat"):
    text: str


class PostInit(msgspec.Struct):
    item: Item

    def __post_init__(self) -> None:
        pass


class Tree(msgspec.Struct):
    children: list[Tree]


CODEC = MessageCodec(Batch | Flat)


def _batch() -> Batch:
    return Batch(room="lobby", items=[Item(nick=f"u{i}", ts=i + 0.5) for i in range(5)])


def _refused(value: Any) -> str:
    with pytest.raises(MessageTypeError) as caught:
        CODEC.encode(value)
    return str(caught.value)


def _with(kind: Any) -> Any:
    return msgspec.defstruct("Made", [("item", Item), ("value", kind)])


# -- which Structs get a mirror ------------------------------------------------------


def test_structs_with_nested_structs_get_a_mirror_and_flat_ones_decode_instead() -> None:
    assert struct_mirror(Batch) is not None
    assert struct_mirror(Flat) is None  # decoding its frame is cheaper
    assert set(CODEC._mirrors) == {Batch}


@pytest.mark.parametrize(
    "kind",
    [
        Annotated[int, msgspec.Meta(ge=0)],
        Annotated[float, msgspec.Meta(lt=1.0)],
        Annotated[str, msgspec.Meta(max_length=3)],
        Annotated[list[int], msgspec.Meta(min_length=1)],
        Annotated[dict[str, int], msgspec.Meta(max_length=1)],
        dict[int, str],
        dict[str, bytes],
        list[bytes],
        int | str,
        Literal["a"],
        bytes,
    ],
)
def test_a_struct_with_a_field_a_mirror_cannot_state_exactly_has_none(kind: Any) -> None:
    assert struct_mirror(_with(kind)) is None


def test_described_optional_and_dict_fields_are_plain_post_init_and_trees_are_not() -> None:
    assert struct_mirror(_with(Annotated[int, msgspec.Meta(title="n")])) is not None
    assert struct_mirror(_with(list[Item] | None)) is not None
    assert struct_mirror(_with(dict[str, list[float]])) is not None
    assert struct_mirror(PostInit) is None
    assert struct_mirror(Tree) is None


# -- what goes out ------------------------------------------------------------------


def test_a_valid_message_goes_out_as_msgspec_writes_it() -> None:
    batch = _batch()
    batch.first = Item(nick="f", ts=-0.0, count=2**70, seen=True)
    batch.scores = {"é": 1e-7, "": 2.5}
    assert CODEC.encode(batch) == msgspec.json.encode(batch)
    assert CODEC.encode(Flat(text="x")) == b'{"type":"flat","text":"x"}'


def test_what_the_mirror_refuses_the_decode_may_still_send() -> None:
    # An int key is written as a string, which dict[str, float] decodes: the
    # decode has the last word for msgspec types, as before the mirror.
    batch = _batch()
    batch.scores = {1: 1.0}  # type: ignore[dict-item]  # the wrong key type is the point
    assert json.loads(CODEC.encode(batch))["scores"] == {"1": 1.0}
    batch = _batch()
    batch.items[0].ts = 3  # an int where a float is declared: the decode takes it
    assert json.loads(CODEC.encode(batch))["items"][0]["ts"] == 3


# -- hostile messages ---------------------------------------------------------------


def _deep_wrong_type(batch: Any) -> None:
    batch.items[3].ts = "noon"


def _deep_bool_for_int(batch: Any) -> None:
    batch.items[4].count = True


def _deep_none(batch: Any) -> None:
    batch.items[2].nick = None


def _deep_nan(batch: Any) -> None:
    batch.items[1].ts = math.nan


def _deep_infinity(batch: Any) -> None:
    batch.items[1].ts = -math.inf


def _huge_int(batch: Any) -> None:
    batch.items[0].count = 10**5000  # beyond what int-to-text conversion allows


def _optional_wrong(batch: Any) -> None:
    batch.first = 5


def _list_of_wrong(batch: Any) -> None:
    batch.tags = ["a", 2]


def _dict_keys_not_str_in_a_nested_place(batch: Any) -> None:
    batch.items[0] = {1: "u", 2: 0.5}


def _dict_value_wrong(batch: Any) -> None:
    batch.scores = {"a": 1.0, "b": None}


def _dict_value_nan(batch: Any) -> None:
    batch.scores = {"a": math.nan}


def _not_a_list(batch: Any) -> None:
    batch.items = "abc"


def _top_wrong_type(batch: Any) -> None:
    batch.room = 5


def _incomplete_nested(batch: Any) -> None:
    batch.items[0] = msgspec.defstruct("Item", [("nick", str)])(nick="x")


def _lone_surrogate(batch: Any) -> None:
    batch.items[0].nick = "\udfff"


def test_a_message_whose_repr_raises_is_still_refused_with_a_message_type_error() -> None:
    batch = _batch()
    _huge_int(batch)  # repr() of the int raises ValueError
    assert "got Batch <Batch object>, which does not match" in _refused(batch)


@pytest.mark.parametrize(
    "spoil",
    [
        _deep_wrong_type,
        _deep_bool_for_int,
        _deep_none,
        _deep_nan,
        _deep_infinity,
        _huge_int,
        _optional_wrong,
        _list_of_wrong,
        _dict_keys_not_str_in_a_nested_place,
        _dict_value_wrong,
        _dict_value_nan,
        _not_a_list,
        _top_wrong_type,
        _incomplete_nested,
        _lone_surrogate,
    ],
)
def test_a_spoilt_nested_struct_is_refused(spoil: Any) -> None:
    batch = _batch()
    spoil(batch)
    assert "does not match the declared sends=Batch | Flat" in _refused(batch)


def test_a_struct_of_another_class_with_the_same_fields_is_not_a_declared_member() -> None:
    other = msgspec.defstruct("Batch", [("room", str), ("items", list[Item])], tag="batch")
    assert "expected one of Batch | Flat" in _refused(other(room="r", items=[]))
