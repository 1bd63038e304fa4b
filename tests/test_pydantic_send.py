"""What send_message() refuses of a pydantic model, on both serializer paths.

(lilya._pydantic_send)
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import math
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar, cast

import pydantic
import pytest

from lilya import _pydantic_send
from lilya.typed import MessageCodec, MessageTypeError, TypedWebSocket

M = TypeVar("M")


class Inner(pydantic.BaseModel):
    a: int


class Say(pydantic.BaseModel):
    type: Literal["say"]
    text: str
    ts: float = 0.0
    tags: list[str] = []


class Leave(pydantic.BaseModel):
    type: Literal["leave"] = "leave"
    room: str


class Loud(Say):
    volume: int = 11


class Retyped(Say):
    text: int  # type: ignore[assignment]  # a subclass that breaks the declared type


class Shout(Say):
    type: Literal["shout"]  # type: ignore[assignment]  # a subclass with another tag


class Stranger(pydantic.BaseModel):
    type: Literal["say"]
    text: str


class Nested(pydantic.BaseModel):
    type: Literal["nested"]
    inner: Inner
    scores: list[float] = []


class Bounded(pydantic.BaseModel):
    n: int = pydantic.Field(gt=0)


class Deep(pydantic.BaseModel):
    type: Literal["deep"]
    inner: Bounded


class Row(pydantic.BaseModel):
    nick: str
    ts: float
    inner: Inner | None = None


class Rows(pydantic.BaseModel):
    type: Literal["rows"]
    rows: list[Row]
    first: Row | None = None


class LoudRow(Row):
    volume: int = 11


class Tree(pydantic.BaseModel):
    type: Literal["tree"]
    children: list[Tree] = []


def test_nested_models_of_plain_fields_are_walked_for_what_the_serializer_skips(
    path: str,
) -> None:
    codec = MessageCodec(Rows)
    good = Rows(type="rows", rows=[Row(nick="a", ts=1.0, inner=Inner(a=1)), Row(nick="b", ts=2)])
    assert codec.encode(good) == good.model_dump_json().encode()
    incomplete = Nested(type="nested", inner=Inner.model_construct())
    assert "field(s) a of inner missing" in _refused(MessageCodec(Nested), incomplete)
    partial = Rows(type="rows", rows=[Row(nick="a", ts=1.0), Row.model_construct(nick="b")])
    assert "field(s) ts of rows[1] missing" in _refused(codec, partial)
    deeper = Rows(type="rows", rows=[Row(nick="a", ts=1.0, inner=Inner.model_construct())])
    assert "field(s) a of rows[0].inner missing" in _refused(codec, deeper)
    first = Rows(type="rows", rows=[], first=Row(nick="a", ts=1.0, inner=Inner.model_construct()))
    assert "field(s) a of first.inner missing" in _refused(codec, first)
    nan = Rows(type="rows", rows=[Row(nick="a", ts=1.0)], first=Row(nick="b", ts=1.0))
    nan.rows[0].ts = math.nan
    assert "field rows[0].ts is nan, which JSON cannot carry" in _refused(codec, nan)
    nan.rows[0].ts = 1.0
    nan.first.ts = math.inf  # type: ignore[union-attr]  # set just above
    assert "field first.ts is inf" in _refused(codec, nan)
    subclass = Rows(type="rows", rows=[LoudRow(nick="a", ts=1.0)])
    assert (
        codec.encode(subclass)
        == b'{"type":"rows","rows":[{"nick":"a","ts":1.0,"inner":null}],"first":null}'
    )
    broken = LoudRow.model_construct(nick="a", volume=1)
    assert "field(s) ts of rows[0] missing" in _refused(codec, Rows(type="rows", rows=[broken]))


class Point(pydantic.BaseModel):
    x: float
    y: float


class Polyline(pydantic.BaseModel):
    type: Literal["path"]
    points: list[Point]


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_nested_float_json_cannot_carry_is_refused_in_a_model_with_nothing_nullable(
    path: str, number: float
) -> None:
    # pydantic writes the float as null, which nothing else in the frame may be:
    # the walk finds it by value, in the item it is in.
    codec = MessageCodec(Polyline)
    line = Polyline(type="path", points=[Point(x=0.0, y=1.0), Point(x=2.0, y=3.0)])
    assert codec.encode(line) == line.model_dump_json().encode()
    line.points[1].y = number
    assert f"field points[1].y is {number!r}, which JSON cannot carry" in _refused(codec, line)


class Positive(pydantic.BaseModel):
    type: Literal["positive"]
    n: int = pydantic.Field(gt=0)


class Aliased(pydantic.BaseModel):
    type: Literal["aliased"]
    user_name: str = pydantic.Field(alias="userName")


class Cached(pydantic.BaseModel):
    type: Literal["cached"]
    text: str

    @functools.cached_property
    def shout(self) -> str:
        return self.text.upper()


class Checked(pydantic.BaseModel):
    type: Literal["checked"]
    low: int
    high: int

    @pydantic.model_validator(mode="after")
    def ordered(self) -> Checked:
        if self.low > self.high:
            raise ValueError("low is above high")
        return self


class Anything(pydantic.BaseModel):
    type: Literal["anything"]
    value: Any


CHAT = MessageCodec(Say | Leave)


@pytest.fixture(params=["fast", "slow"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with lilya's filter deciding (fast) or shadowed by an "ignore" (slow).

    pytest's own filters go before lilya's, so the fast path is set up by hand.
    """
    with warnings.catch_warnings():
        if request.param == "fast":
            _pydantic_send.install_filter()
        else:
            warnings.simplefilter("ignore")
        yield request.param
        wrong = Leave(room="r")
        wrong.room = 5  # type: ignore[assignment]  # the mirror refuses it: pydantic's path runs
        with pytest.raises(MessageTypeError):
            CHAT.encode(wrong)
        assert _fast_path_taken() is (request.param == "fast")


def _fast_path_taken() -> bool:
    """Whether the last encode went through lilya's filter (rather than warnings="error")."""
    return _pydantic_send._fast


def _refused(codec: MessageCodec, value: Any) -> str:
    with pytest.raises(MessageTypeError) as caught:
        codec.encode(value)
    return str(caught.value)


def test_a_valid_model_is_sent_as_pydantic_writes_it_on_either_path(path: str) -> None:
    message = Say(type="say", text="hé", ts=1.5, tags=["a"])
    assert CHAT.encode(message) == message.model_dump_json().encode()
    assert CHAT.encode(Leave(room="r")) == b'{"type":"leave","room":"r"}'


def test_a_model_mutated_to_a_wrong_type_is_refused_naming_type_and_field(path: str) -> None:
    message = Say(type="say", text="hi")
    message.text = 5  # type: ignore[assignment]  # pydantic does not check assignment
    text = _refused(CHAT, message)
    assert text.startswith("send_message() got Say ")
    assert "field_name='text'" in text
    assert "input_type=int" in text
    message = Say(type="say", text="hi")
    message.tags = ["a", 2]  # type: ignore[list-item]  # the wrong type is the point
    assert "field_name='tags'" in _refused(CHAT, message)


def test_a_model_mutated_to_another_tag_is_refused(path: str) -> None:
    message = Say(type="say", text="hi")
    message.type = "leave"  # type: ignore[assignment]  # the wrong tag is the point
    assert "field type is 'leave', not the tag 'say'" in _refused(CHAT, message)


def test_model_construct_with_missing_or_wrong_fields_is_refused(path: str) -> None:
    text = _refused(CHAT, Say.model_construct(type="say"))
    assert "send_message() got Say " in text
    assert "field(s) text missing" in text
    assert "field type is None" in _refused(CHAT, Say.model_construct(text="x"))
    wrong = Say.model_construct(type="say", text=3)
    assert "field_name='text'" in _refused(CHAT, wrong)


def test_a_subclass_is_sent_as_the_declared_model_and_checked_against_it(path: str) -> None:
    assert CHAT.encode(Loud(type="say", text="x")) == CHAT.encode(Say(type="say", text="x"))
    text = _refused(CHAT, Retyped(type="say", text=3))
    assert "got Retyped " in text
    assert "field_name='text'" in text
    assert "not the tag 'say'" in _refused(CHAT, Shout(type="shout", text="x"))
    assert "field(s) text missing" in _refused(CHAT, Loud.model_construct(type="say", ts=1.0))


def test_a_model_not_in_the_declared_union_is_refused(path: str) -> None:
    text = _refused(CHAT, Stranger(type="say", text="x"))
    assert "got Stranger " in text
    assert "sends=Say | Leave: not one of the declared models" in text
    assert "not one of the declared models" in _refused(CHAT, {"type": "say", "text": "x"})


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_float_json_cannot_carry_is_refused_rather_than_sent_as_null(
    path: str, number: float
) -> None:
    message = Say(type="say", text="x")
    message.ts = number
    assert "field ts is" in _refused(CHAT, message)
    nested = MessageCodec(Nested)
    value = Nested(type="nested", inner=Inner(a=1), scores=[1.0])
    value.scores = [1.0, number]
    assert "field scores.1: Input should be a valid number" in _refused(nested, value)


def test_what_the_serializer_does_not_check_is_validated_on_the_frame(path: str) -> None:
    positive = Positive(type="positive", n=1)
    assert MessageCodec(Positive).encode(positive) == b'{"type":"positive","n":1}'
    positive.n = -1
    assert "field n: Input should be greater than 0" in _refused(MessageCodec(Positive), positive)
    limited = Deep(type="deep", inner=Bounded(n=1))
    limited.inner.n = -1
    assert "field inner.n: Input should be greater than 0" in _refused(MessageCodec(Deep), limited)
    checked = Checked(type="checked", low=1, high=2)
    checked.low = 3
    assert "field (the model): Value error, low is above high" in _refused(
        MessageCodec(Checked), checked
    )


def test_a_value_pydantic_cannot_serialize_is_refused(path: str) -> None:
    text = _refused(MessageCodec(Anything), Anything(type="anything", value=object()))
    assert "Unable to serialize unknown type" in text


def test_aliases_go_on_the_wire_as_the_schema_documents_them(path: str) -> None:
    codec = MessageCodec(Aliased)
    frame = codec.encode(Aliased(type="aliased", userName="ann"))
    assert frame == b'{"type":"aliased","userName":"ann"}'
    assert codec.decode(frame) == Aliased(type="aliased", userName="ann")


class Wrapper(pydantic.BaseModel):
    type: Literal["wrapper"]
    inner: Aliased


class Wrapped(pydantic.BaseModel):
    type: Literal["wrapped"]
    n: int

    @pydantic.model_serializer(mode="wrap")
    def with_note(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {**handler(self), "note": "x"}


@pytest.mark.parametrize(
    ("model", "message", "frame"),
    [
        # The alias in a nested model, in a value typed Any, behind a custom serializer.
        (Wrapper, {"type": "wrapper", "inner": Aliased(type="aliased", userName="a")}, b"userName"),
        (
            Anything,
            {"type": "anything", "value": Aliased(type="aliased", userName="a")},
            b"userName",
        ),
        (Wrapped, {"type": "wrapped", "n": 1}, b'"note":"x"'),
    ],
)
def test_a_model_that_may_reach_an_alias_is_encoded_with_aliases(
    path: str, model: Any, message: dict[str, Any], frame: bytes
) -> None:
    codec = MessageCodec(model)
    assert frame in codec.encode(model(**message))
    plans = cast(Any, codec._encode).__self__.plans
    assert plans[model].aliased


def test_a_model_that_names_no_alias_is_encoded_without_by_alias(path: str) -> None:
    # by_alias=True costs the serializer ~280 instructions a message; it would change nothing.
    plans = cast(Any, CHAT._encode).__self__.plans
    assert not plans[Say].aliased
    assert CHAT.encode(Say(type="say", text="hi")) == (
        b'{"type":"say","text":"hi","ts":0.0,"tags":[]}'
    )


def test_a_cached_property_in_the_dict_does_not_hide_a_missing_field(path: str) -> None:
    codec = MessageCodec(Cached)
    whole = Cached(type="cached", text="hi")
    assert whole.shout == "HI"
    assert codec.encode(whole) == b'{"type":"cached","text":"hi"}'
    partial = Cached.model_construct(type="cached")
    partial.__dict__["shout"] = "HI"  # as the cached_property would store it
    assert "field(s) text missing" in _refused(codec, partial)


def test_a_refused_send_puts_nothing_on_the_wire(path: str) -> None:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def run() -> None:
        scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
        websocket: TypedWebSocket[Any, Say | Leave] = TypedWebSocket(
            scope, receive, send, sends=Say | Leave
        )
        await websocket.accept()
        await websocket.send_message(Say(type="say", text="ok"))
        with pytest.raises(MessageTypeError):
            await websocket.send_message(Say.model_construct(type="say"))

    asyncio.run(run())
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.send"]
    assert sent[1]["text"] == '{"type":"say","text":"ok","ts":0.0,"tags":[]}'


def test_the_filter_path_is_taken_only_while_no_earlier_filter_takes_the_warning() -> None:
    decides = _pydantic_send._filter_decides
    ours = _pydantic_send._FILTER
    other_module = ("ignore", None, UserWarning, __import__("re").compile("other"), 0)
    deprecations = ("ignore", None, DeprecationWarning, None, 0)
    errors = ("error", None, Warning, None, 0)
    ignore_all = ("ignore", None, Warning, None, 0)
    assert decides([ours])
    assert decides([other_module, deprecations, errors, ours])
    assert not decides([ignore_all, ours])
    assert not decides([("default", None, UserWarning, None, 0), ours])
    assert not decides([deprecations])
    assert not decides([])


def test_the_decision_is_looked_at_again_when_the_filters_change() -> None:
    message = Loud(type="say", text="x")  # a subclass: the mirror leaves it to pydantic's path
    with warnings.catch_warnings():
        _pydantic_send.install_filter()
        CHAT.encode(message)
        assert _fast_path_taken()
        warnings.simplefilter("ignore")  # goes first: lilya's filter no longer decides
        CHAT.encode(message)
        assert not _fast_path_taken()
        warnings.resetwarnings()  # no filter at all
        CHAT.encode(message)
        assert not _fast_path_taken()
        wrong = Say(type="say", text="x")
        wrong.text = 5  # type: ignore[assignment]  # the wrong type is the point
        for _ in range(2):  # an empty list is looked at again every time: still refused
            with pytest.raises(MessageTypeError, match="Expected `str`"):
                CHAT.encode(wrong)
        _pydantic_send.install_filter()  # the list is no longer empty: fast again
        CHAT.encode(message)
        assert _fast_path_taken()
        with pytest.raises(MessageTypeError, match="Expected `str`"):
            CHAT.encode(wrong)


def test_the_filter_path_is_proven_to_raise() -> None:
    assert _pydantic_send.fast_path_works()


class Optional_(pydantic.BaseModel):
    type: Literal["o"]
    note: str | None = None
    counts: dict[str, int] = {}
    anything: Any = None


class ListOfFloats(pydantic.BaseModel):
    type: Literal["l"]
    values: list[float]


class Limited(pydantic.BaseModel):
    type: Literal["x"]
    text: str = pydantic.Field(max_length=5)


class WithConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    type: Literal["x"]


class WithComputed(pydantic.BaseModel):
    type: Literal["x"]

    @pydantic.computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def twice(self) -> int:
        return 2


class WithInit(pydantic.BaseModel):
    type: Literal["x"]

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)


class WithPrivate(pydantic.BaseModel):
    type: Literal["x"]
    _secret: int = 0


class WithExclude(pydantic.BaseModel):
    type: Literal["x"]
    hidden: int = pydantic.Field(default=0, exclude=True)


class WithSerializer(pydantic.BaseModel):
    type: Literal["x"]
    n: int

    @pydantic.field_serializer("n")
    def as_text(self, n: int) -> str:
        return str(n)


class WithSplitAlias(pydantic.BaseModel):
    type: Literal["x"]
    n: int = pydantic.Field(validation_alias="in", serialization_alias="out")


class WithLiteral(pydantic.BaseModel):
    type: Literal["x"]
    mood: Literal["happy", "sad"]


class WithFactory(pydantic.BaseModel):
    type: Literal["x"]
    tags: list[str] = pydantic.Field(default_factory=list)


class WithLimitedList(pydantic.BaseModel):
    type: Literal["x"]
    tags: list[str] = pydantic.Field(max_length=3)


class WithLimitedDict(pydantic.BaseModel):
    type: Literal["x"]
    counts: dict[str, int] = pydantic.Field(max_length=3)


class WithNonTagType(pydantic.BaseModel):
    type: str


class WithOptionalFloat(pydantic.BaseModel):
    type: Literal["x"]
    ts: float | None = None


class RootList(pydantic.RootModel[list[int]]):
    pass


@pytest.mark.parametrize(
    ("model", "revalidate", "floats"),
    [
        (Say, 0, ("ts",)),
        (Leave, 0, ()),
        (Optional_, 0, ()),
        (WithNonTagType, 0, ()),
        (WithOptionalFloat, 1, ()),
        (ListOfFloats, 1, ()),
        (Nested, 1, ()),
        (Rows, 0, ()),
        (Deep, 2, ()),
        (Tree, 2, ()),
        (Positive, 2, ()),
        (Limited, 2, ()),
        (WithConfig, 2, ()),
        (WithComputed, 2, ()),
        (WithInit, 2, ()),
        (WithPrivate, 2, ()),
        (WithExclude, 2, ()),
        (WithSerializer, 2, ()),
        (WithSplitAlias, 2, ()),
        (WithLiteral, 2, ()),
        (WithFactory, 2, ()),
        (WithLimitedList, 2, ()),
        (WithLimitedDict, 2, ()),
        (Checked, 2, ()),
        (RootList, 2, ()),
    ],
)
def test_the_serializer_is_trusted_alone_only_for_plain_fields(
    model: Any, revalidate: int, floats: tuple[str, ...]
) -> None:
    plan = _pydantic_send.MemberPlan(model, None)
    assert (plan.revalidate, plan.floats) == (revalidate, floats)


# -- the mirror: plain models checked and encoded by msgspec --------------------


class Tagged(pydantic.BaseModel):
    type: Literal["tagged"] = "tagged"
    mood: Literal["happy", "sad"]
    counts: dict[str, int] = {}
    note: str | None = None
    big: int = 0
    flag: bool = False


class Branch(pydantic.BaseModel):
    rows: list[Row]
    best: Row | None = None
    tagged: Tagged


class Forest(pydantic.BaseModel):
    type: Literal["forest"]
    branches: list[Branch]
    weights: list[float] = []
    lookup: dict[str, float | None] = {}


class Twin(pydantic.BaseModel):
    """Row's fields under another class: not a Row."""

    nick: str
    ts: float
    inner: Inner | None = None


class AliasedRow(pydantic.BaseModel):
    type: Literal["arow"]
    user_name: str = pydantic.Field(alias="userName")
    row: Row


class Levelled(pydantic.BaseModel):
    type: Literal["levelled"]
    level: Literal[1, 2]


def _plan(codec: MessageCodec, model: Any) -> Any:
    return cast(Any, codec._encode).__self__.plans[model]


def _outcome(codec: MessageCodec, value: Any) -> Any:
    """What encoding *value* gives: the frame's JSON, or "refused"."""
    try:
        return _json(codec.encode(value))
    except MessageTypeError:
        return "refused"


def _json(data: str | bytes) -> Any:
    return json.loads(data)


def _without_mirror(codec: MessageCodec, value: Any) -> Any:
    """*value* encoded by pydantic's path alone (the mirror switched off)."""
    plan = (
        _plan(codec, type(value))
        if type(value) in cast(Any, codec._encode).__self__.plans
        else None
    )
    if plan is None:
        return _outcome(codec, value)
    mirror, plan.mirror = plan.mirror, None
    try:
        return _outcome(codec, value)
    finally:
        plan.mirror = mirror


def _from_attributes(codec: MessageCodec, value: Any) -> bytes | str:
    """*value*'s frame with the mirror filled from its attributes, not its dict form."""
    plan = _plan(codec, type(value))
    plan.mirror_reads_dict = False
    try:
        return _frame_or_refusal(codec, value)
    finally:
        plan.mirror_reads_dict = True


def _frame_or_refusal(codec: MessageCodec, value: Any) -> bytes | str:
    try:
        return codec.encode(value)
    except MessageTypeError as exc:
        return str(exc)


class _Colour(str, enum.Enum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


def _forest() -> Forest:
    row = Row(nick="a", ts=1.5, inner=Inner(a=2**70))
    tagged = Tagged(mood="happy", counts={"x": 1}, note='é\u2028<"\\', big=-(2**80), flag=True)
    branch = Branch(rows=[row, Row(nick="b", ts=2)], best=row, tagged=tagged)
    return Forest(
        type="forest",
        branches=[branch, Branch(rows=[], tagged=Tagged(mood="sad"))],
        weights=[0.1, 1e20, -0.0, 5e-324],
        lookup={"k": None, "j": 1.25},
    )


def test_plain_models_get_a_mirror_and_the_rest_keep_pydantics_path() -> None:
    assert _plan(MessageCodec(Forest), Forest).mirror is not None
    assert _plan(CHAT, Say).mirror is not None
    assert _plan(MessageCodec(Rows), Rows).mirror is not None
    assert _plan(MessageCodec(AliasedRow), AliasedRow).mirror is not None
    # Read from __dict__ without from_attributes=True where no alias renames
    # a field: as it is where no model is nested, as its dict form otherwise.
    assert _plan(CHAT, Say).mirror_flat
    assert not _plan(MessageCodec(Forest), Forest).mirror_flat
    assert _plan(MessageCodec(Forest), Forest).mirror_reads_dict
    assert not _plan(MessageCodec(AliasedRow), AliasedRow).mirror_reads_dict
    assert _plan(MessageCodec(Wrapper), Wrapper).mirror is not None  # the alias is nested
    for model in (Positive, Checked, Anything, Tree, Deep, Wrapped, Levelled):
        assert _plan(MessageCodec(model), model).mirror is None, model


def test_the_mirror_sends_what_pydantic_would_as_json(path: str) -> None:
    forest = _forest()
    codec = MessageCodec(Forest)
    frame = codec.encode(forest)
    assert _json(frame) == _json(forest.model_dump_json())
    assert list(_json(frame)) == list(Forest.model_fields)  # the fields' order
    assert codec.decode(frame) == forest
    assert CHAT.encode(Say(type="say", text="hé", ts=2)) == (
        Say(type="say", text="hé", ts=2).model_dump_json().encode()
    )


def test_the_mirror_writes_aliases_and_reads_the_fields_by_name(path: str) -> None:
    codec = MessageCodec(AliasedRow)
    value = AliasedRow(type="arow", userName="ann", row=Row(nick="a", ts=1.0))
    assert codec.encode(value) == value.model_dump_json(by_alias=True).encode()
    assert _plan(codec, AliasedRow).mirror is not None
    value.user_name = 3  # type: ignore[assignment]  # the wrong type is the point
    assert "field_name='user_name'" in _refused(codec, value)
    assert "field(s) user_name missing" in _refused(
        codec, AliasedRow.model_construct(type="arow", row=Row(nick="a", ts=1.0))
    )


def _setter(obj: Any, name: str, value: Any) -> None:
    """Set a field behind pydantic's back (no validation on assignment)."""
    object.__setattr__(obj, name, value)


def _changed(make: Callable[[], M], change: Callable[[Any], object]) -> M:
    value = make()
    change(value)
    return value


def _hostile_forests() -> Iterator[tuple[str, Forest]]:
    def mutated(change: Callable[[Any], object]) -> Forest:
        return _changed(_forest, change)

    yield "deep wrong type", mutated(lambda f: _setter(f.branches[0].rows[0].inner, "a", "2"))
    yield "deep float as str", mutated(lambda f: _setter(f.branches[0].rows[1], "ts", "1.0"))
    yield "deep nan", mutated(lambda f: _setter(f.branches[0].rows[1], "ts", math.nan))
    yield "deep inf", mutated(lambda f: _setter(f.branches[0].best, "ts", -math.inf))
    yield "nan in a list", mutated(lambda f: f.weights.append(math.nan))
    yield "inf in a dict", mutated(lambda f: f.lookup.update(z=math.inf))
    yield "non-str dict key", mutated(lambda f: f.branches[0].tagged.counts.update({1: 1}))
    yield "bool for int", mutated(lambda f: f.branches[0].tagged.counts.update(b=True))
    yield "float for int", mutated(lambda f: _setter(f.branches[0].tagged, "big", 1.5))
    yield "int for bool", mutated(lambda f: _setter(f.branches[0].tagged, "flag", 1))
    yield "literal outside", mutated(lambda f: _setter(f.branches[1].tagged, "mood", "meh"))
    yield "wrong tag deep", mutated(lambda f: _setter(f.branches[1].tagged, "type", "x"))
    yield "wrong tag", mutated(lambda f: _setter(f, "type", "tree"))
    yield (
        "missing deep",
        mutated(lambda f: f.branches[0].rows.append(Row.model_construct(nick="c"))),
    )
    yield (
        "missing nested",
        mutated(lambda f: _setter(f.branches[1], "tagged", Tagged.model_construct())),
    )
    yield "dict for model", mutated(lambda f: f.branches[0].rows.append({"nick": "c", "ts": 1.0}))
    yield "twin for model", mutated(lambda f: f.branches[0].rows.append(Twin(nick="c", ts=1.0)))
    yield "twin optional", mutated(lambda f: _setter(f.branches[0], "best", Twin(nick="c", ts=1.0)))
    yield (
        "another model two deep",
        mutated(
            lambda f: _setter(
                f.branches[1], "best", Row.model_construct(nick="d", ts=1.0, inner=Bounded(n=1))
            )
        ),
    )
    yield "subclass nested", mutated(lambda f: f.branches[0].rows.append(LoudRow(nick="c", ts=1.0)))
    yield "None for list", mutated(lambda f: _setter(f, "branches", None))
    yield "tuple for list", mutated(lambda f: _setter(f, "weights", (1.0,)))
    yield "object", mutated(lambda f: _setter(f.branches[0].tagged, "note", object()))
    yield (
        "str subclass",
        mutated(lambda f: _setter(f.branches[0].tagged, "note", type("S", (str,), {})("s"))),
    )
    yield "str enum", mutated(lambda f: _setter(f.branches[0].tagged, "note", _Colour.RED))
    yield "int enum", mutated(lambda f: _setter(f.branches[0].tagged, "big", _Level.HIGH))
    yield "mapping for dict", mutated(lambda f: _setter(f, "lookup", types.MappingProxyType({})))
    yield (
        "tuple of models",
        mutated(lambda f: _setter(f.branches[0], "rows", (Row(nick="c", ts=1.0),))),
    )
    yield "lone surrogate", mutated(lambda f: _setter(f.branches[0].tagged, "note", "\ud800"))
    yield "huge int", mutated(lambda f: _setter(f.branches[0].tagged, "big", 10**40))
    yield "huge int for float", mutated(lambda f: f.weights.append(2**70 + 1))


@pytest.mark.parametrize(
    ("case", "forest"), list(_hostile_forests()), ids=lambda x: x if isinstance(x, str) else ""
)
def test_the_mirror_accepts_nothing_pydantics_path_refuses(
    path: str, case: str, forest: Forest
) -> None:
    # Whatever the mirror says yes to, pydantic's path says yes to as well, and
    # to the same JSON; whatever it says no to goes down pydantic's path, and
    # stays refused where that path would write another value than the
    # model's (an infinity as null in a float | None, True as 1 in an int).
    codec = MessageCodec(Forest)
    if case in _REWRITTEN_BY_PYDANTIC:
        assert _outcome(codec, forest) == "refused"
        assert _without_mirror(codec, forest) != "refused"
        return
    assert _outcome(codec, forest) == _without_mirror(codec, forest)


_REWRITTEN_BY_PYDANTIC = {"inf in a dict", "bool for int"}


def _said(field: str, value: Any) -> Say:
    message = Say(type="say", text="x")
    object.__setattr__(message, field, value)
    return message


@pytest.mark.parametrize(
    ("field", "value", "written"),
    [
        ("text", None, b'"text":null'),
        ("tags", ["a", None], b'"tags":["a",null]'),
        ("ts", True, b'"ts":1.0'),
    ],
)
def test_what_pydantics_serializer_writes_unwarned_as_another_value_is_refused(
    path: str, field: str, value: Any, written: bytes
) -> None:
    # pydantic's serializer writes these without a warning; the mirror's
    # conversion refuses them, and its refusal stands.
    message = _said(field, value)
    assert written in _pydantic_send.MemberPlan(Say, "say").to_json(message)
    assert "Expected" in _refused(CHAT, message)


@pytest.mark.parametrize(
    "case",
    [
        "deep wrong type",
        "deep nan",
        "deep inf",
        "nan in a list",
        "non-str dict key",
        "literal outside",
        "wrong tag",
        "missing deep",
        "missing nested",
        "dict for model",
        "None for list",
        "object",
        "float for int",
        "deep float as str",
        "wrong tag deep",
    ],
)
def test_what_does_not_fit_is_refused_with_the_mirror_in_place(path: str, case: str) -> None:
    forest = dict(_hostile_forests())[case]
    assert _refused(MessageCodec(Forest), forest).startswith("send_message() got Forest ")


class Flock(pydantic.BaseModel):
    """Nested models without models inside them: read by one comprehension."""

    type: Literal["flock"]
    birds: list[Inner]
    leader: Inner
    scout: Inner | None = None


class LoudInner(Inner):
    volume: int = 11


def _flock() -> Flock:
    return Flock(type="flock", birds=[Inner(a=1), Inner(a=2)], leader=Inner(a=3))


def _dict_of(model: Any) -> dict[str, Any]:
    return cast(dict[str, Any], object.__getattribute__(model, "__dict__"))


def test_plain_unaliased_models_fill_their_mirror_from_their_dict_form(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The class check after a conversion from the attributes is never reached:
    # the dict form compared the classes while gathering the dicts.
    def not_called(*args: Any) -> bool:
        raise AssertionError("the mirror was filled from the attributes")

    forest, flock = _forest(), _flock()
    frames = [
        _from_attributes(MessageCodec(Forest), forest),
        _from_attributes(MessageCodec(Flock), flock),
    ]
    monkeypatch.setattr(_pydantic_send, "_classes_fit", not_called)
    for codec, value, frame in zip(
        (MessageCodec(Forest), MessageCodec(Flock)), (forest, flock), frames, strict=True
    ):
        assert codec.encode(value) == frame  # byte for byte
        assert _json(frame) == _json(value.model_dump_json())
        assert list(_json(frame)) == list(type(value).model_fields)
        assert codec.decode(frame) == value


def _hostile_flocks() -> Iterator[tuple[str, Flock]]:
    def mutated(change: Callable[[Any], object]) -> Flock:
        return _changed(_flock, change)

    yield "valid", _flock()
    yield "scout", mutated(lambda f: _setter(f, "scout", Inner(a=4)))
    yield "twin in the list", mutated(lambda f: f.birds.append(Twin(nick="c", ts=1.0)))
    yield "another model in the list", mutated(lambda f: f.birds.append(Bounded(n=1)))
    yield "subclass in the list", mutated(lambda f: f.birds.append(LoudInner(a=1)))
    yield "dict in the list", mutated(lambda f: f.birds.append({"a": 1}))
    yield "tuple for the list", mutated(lambda f: _setter(f, "birds", (Inner(a=1),)))
    yield "dict for a model", mutated(lambda f: _setter(f, "leader", {"a": 1}))
    yield "twin for a model", mutated(lambda f: _setter(f, "scout", Row(nick="c", ts=1.0)))
    yield "None for a model", mutated(lambda f: _setter(f, "leader", None))
    yield "missing model", mutated(lambda f: _dict_of(f).pop("leader"))
    yield "wrong type inside", mutated(lambda f: _setter(f.birds[1], "a", "2"))
    yield "extra key inside", mutated(lambda f: _dict_of(f.birds[0]).update(secret="s"))
    yield "extra key", mutated(lambda f: _dict_of(f).update(secret="s"))
    yield "huge int inside", mutated(lambda f: _setter(f.leader, "a", 2**70))
    yield "int subclass inside", mutated(lambda f: _setter(f.leader, "a", _Level.HIGH))


_HOSTILE = [
    *((f"forest: {case}", Forest, forest) for case, forest in _hostile_forests()),
    ("forest: valid", Forest, _forest()),
    *((f"flock: {case}", Flock, flock) for case, flock in _hostile_flocks()),
]


@pytest.mark.parametrize(("case", "model", "value"), _HOSTILE, ids=[c for c, *_ in _HOSTILE])
def test_the_dict_form_sends_and_refuses_exactly_what_the_attributes_would(
    path: str, case: str, model: Any, value: Any
) -> None:
    # Filling the mirror from the dict form sends the very frame filling it
    # from the attributes sends, and refuses what that refuses, the same way.
    codec = MessageCodec(model)
    assert _frame_or_refusal(codec, value) == _from_attributes(codec, value)


def test_a_key_written_into_a_models_dict_never_reaches_the_wire(path: str) -> None:
    flock = _flock()
    _dict_of(flock.birds[0]).update(secret="s")
    _dict_of(flock).update(password="p")
    frame = MessageCodec(Flock).encode(flock)
    assert b"secret" not in frame and b"password" not in frame
    assert _json(frame) == _json(_flock().model_dump_json())


class Perch(pydantic.BaseModel):
    """A list of nested models with a default: walked on pydantic's path."""

    birds: list[Inner] = []


def test_none_for_a_list_of_models_is_refused_not_a_type_error(path: str) -> None:
    # The mirror refuses it; pydantic's path, which then words the refusal,
    # walked the None as a list.
    perch = Perch()
    _setter(perch, "birds", None)
    assert "field birds is None, not a list" in _refused(MessageCodec(Perch), perch)


class _Lying(dict[str, Any]):
    """A __dict__ whose copy says its type tag is 999."""

    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self)

    def __getitem__(self, key: str) -> Any:
        return 999 if key == "type" else dict.__getitem__(self, key)


def test_a_dict_subclass_swapped_in_for_a_dict_is_read_through_the_attributes(
    path: str,
) -> None:
    flock = _flock()
    _setter(flock, "__dict__", _Lying(_dict_of(flock)))
    assert flock.type == "flock"
    assert _json(MessageCodec(Flock).encode(flock)) == _json(_flock().model_dump_json())
