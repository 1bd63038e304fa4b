"""The JSON codec: fast where it can be, byte-identical to the stdlib always."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import struct
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lilya import _json
from lilya.exceptions import InvalidJSONError


def stdlib(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_dumps_equals_the_stdlib_compact_form_for_any_json_value(value: Any) -> None:
    assert _json.dumps_text(value) == stdlib(value)
    assert _json.dumps_bytes(value) == stdlib(value).encode()


@pytest.mark.parametrize("seed", range(4))
def test_dumps_equals_the_stdlib_for_every_kind_of_double(seed: int) -> None:
    import random

    rng = random.Random(seed)
    for _ in range(20_000):
        value = struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        assert _json.dumps_text([value]) == stdlib([value])
        scaled = rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
        assert _json.dumps_text(scaled) == stdlib(scaled)


@pytest.mark.parametrize(
    "value",
    [
        1e16,
        1e-5,
        1.5e-5,
        9.999e-5,
        1e-4,
        123456789012345678.0,
        -0.0,
        math.nan,
        math.inf,
        -math.inf,
        2**64,
        -(2**63) - 1,
        {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
        '\u2028\u2029\x7f\x00\x1f"\\/é😀',
        (1, 2),
        {"nested": [{"a": None}]},
    ],
)
def test_dumps_matches_the_stdlib_where_orjson_would_differ(value: Any) -> None:
    assert _json.dumps_text(value) == stdlib(value)
    assert _json.dumps_bytes(value) == stdlib(value).encode()


def test_subclasses_of_builtins_are_encoded_as_the_stdlib_does() -> None:
    class Score(int):
        pass

    class Name(str):
        pass

    class Bag(dict):  # type: ignore[type-arg]
        pass

    class Color(enum.IntEnum):
        RED = 1

    value = [Score(3), Name("ann"), Bag(a=1), Color.RED, True]
    assert _json.dumps_text(value) == stdlib(value)


def test_uuid_and_enum_are_accepted_on_every_path_as_orjson_writes_them() -> None:
    class Mood(enum.Enum):
        HAPPY = "happy"

    ident = uuid.UUID(int=7)
    # Without and with a value (None) that sends the payload down the fallback.
    assert _json.dumps_text([ident, Mood.HAPPY]) == f'["{ident}","happy"]'
    assert _json.dumps_text([ident, Mood.HAPPY, None]) == f'["{ident}","happy",null]'


@pytest.mark.parametrize(
    "value",
    [object(), datetime.datetime(2026, 1, 1), {"when": datetime.date(2026, 1, 1)}, {1, 2}],
)
def test_values_the_stdlib_refuses_raise_type_error_on_every_path(value: Any) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json.dumps_text(value)
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json.dumps_bytes([value, None])


def test_dataclasses_are_refused_like_the_stdlib_does() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    with pytest.raises(TypeError):
        _json.dumps_text(Point(1))


def test_circular_data_raises_value_error() -> None:
    data: list[Any] = []
    data.append(data)
    with pytest.raises(ValueError, match=r"[Cc]ircular"):
        _json.dumps_text(data)


def test_loads_reads_text_and_utf8_bytes() -> None:
    assert _json.loads('{"a":"é"}') == {"a": "é"}
    assert _json.loads('{"a":"é"}'.encode(), "binary") == {"a": "é"}


@pytest.mark.parametrize("doc", ['"\\ud800"', "[1e999]", "NaN", "-Infinity"])
def test_loads_accepts_what_the_stdlib_accepts(doc: str) -> None:
    result = _json.loads(doc)
    expected = json.loads(doc)
    assert repr(result) == repr(expected)


def test_loads_refuses_bytes_in_other_encodings_than_utf8() -> None:
    with pytest.raises(InvalidJSONError, match="not valid UTF-8"):
        _json.loads('"é"'.encode("utf-16"), "binary")


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_loads_returns_what_the_stdlib_returns_for_any_document(value: Any) -> None:
    document = json.dumps(value)
    expected = json.loads(document)
    for data, mode in ((document, "text"), (document.encode(), "binary")):
        assert repr(_json.loads(data, mode)) == repr(expected)


@pytest.mark.parametrize(
    "document",
    [
        "1180591620717411303424",
        "[18446744073709551616]",
        "18446744073709551615",
        '{"id": -9223372036854775809}',
        "-9223372036854775808",
        "[1.2345678901234567890123]",
    ],
)
def test_integers_beyond_64_bits_stay_exact(document: str) -> None:
    value = _json.loads(document)
    assert value == json.loads(document)
    assert repr(value) == repr(json.loads(document))


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ("1" * 5000, "an integer has more than 4300 digits"),
        ('{"n": -' + "9" * 4301 + "}", "an integer has more than 4300 digits"),
        ("[" * 1_000_000 + "]" * 1_000_000, "nested too deeply"),  # orjson would crash
        ('{"a":' * 5000 + "1" + "}" * 5000, "nested too deeply"),
    ],
)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_documents_the_stdlib_refuses_are_invalid_json_with_the_rule_named(
    document: str, detail: str, kind: str
) -> None:
    data: str | bytes = document if kind == "text" else document.encode()
    with pytest.raises(InvalidJSONError, match=detail) as info:
        _json.loads(data, kind)
    assert info.value.mode == kind


def test_nesting_up_to_the_fast_depth_is_always_read_on_either_path() -> None:
    depth = _json.MAX_FAST_DEPTH
    deep = "[" * depth + "]" * depth
    assert _json.loads(deep) == _json.loads(deep.encode()) == json.loads(deep)
    # Many brackets but shallow: the stdlib path, same value.
    wide = json.dumps([{"a": [i]} for i in range(depth)])
    assert _json.loads(wide) == json.loads(wide)
