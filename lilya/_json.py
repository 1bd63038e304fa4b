"""JSON in the one form lilya sends: compact, UTF-8 kept, identical to the stdlib's.

The contract (SPEC §2) is that what we send equals
``json.dumps(data, separators=(",", ":"), ensure_ascii=False)`` for every value
the standard library accepts. ``orjson`` is several times faster and agrees on
almost everything; where it may not, we fall back to the standard library:

* floats: orjson writes ``1e16`` and ``0.00001`` where ``repr`` writes
  ``1e+16`` and ``1e-05``, and ``null`` for NaN/Infinity where the stdlib writes
  ``NaN``. We look in orjson's output for an exponent (``e`` then a digit or
  ``-``), for ``0.0000`` and for ``null``, and redo such payloads with the
  stdlib. A string that merely contains those characters costs a second encode,
  never a wrong result. (Checked against random doubles in the tests.) The
  three searches are literal-led, so they run at C speed: a general regex over
  every byte cost more than the encoding itself.
* integers beyond 64 bits, non-``str`` dict keys, subclasses of builtins and
  anything else orjson refuses: it raises, and we fall back.
* reading, integers beyond 64 bits: orjson returns them as floats; a run of
  19 or more digits in the document sends it to the stdlib instead.
* reading, nesting: orjson has no depth bound (a million brackets crash the
  process), so documents with more than 500 brackets are read by the stdlib,
  which refuses what is deeper than the recursion limit; and the stdlib's
  refusals (over-long integers too) all become ``InvalidJSONError``.
* ``uuid.UUID`` and ``enum.Enum``, which orjson serializes and the stdlib
  refuses: the fallback serializes them the same way orjson does, so whether a
  payload takes the fast path never changes which values are accepted.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import uuid
from typing import Any, Final

import orjson

from lilya.exceptions import InvalidJSONError

__all__ = ["dumps_bytes", "dumps_text", "loads"]

_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_exponent = re.compile(rb"e[-0-9]").search
_find = bytes.find
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_ENCODE_ERRORS = (TypeError, orjson.JSONEncodeError)


def _like_orjson(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# ``json.dumps`` with non-default arguments builds a new JSONEncoder per call;
# reusing one is what it does internally, minus a third of the cost.
_stdlib_dumps = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=_like_orjson
).encode


def dumps_bytes(data: Any) -> bytes:
    """Return *data* as compact UTF-8 JSON bytes.

    Raises:
        TypeError: *data* holds a value JSON cannot represent.
        ValueError: *data* is circular.
        UnicodeEncodeError: a string holds a lone surrogate, which is not UTF-8.
    """
    try:
        out = _orjson_dumps(data, option=_ORJSON_OPTIONS)
    except _ENCODE_ERRORS:
        return _stdlib_dumps(data).encode("utf-8")
    if _exponent(out) is None and _find(out, b"null") < 0 and _find(out, b"0.0000") < 0:
        return out
    return _stdlib_dumps(data).encode("utf-8")


def dumps_text(data: Any) -> str:
    """Return *data* as compact JSON text (non-ASCII kept as is).

    Raises:
        TypeError: *data* holds a value JSON cannot represent.
        ValueError: *data* is circular.
        UnicodeEncodeError: a string holds a lone surrogate, which is not UTF-8.
    """
    try:
        out = _orjson_dumps(data, option=_ORJSON_OPTIONS)
    except _ENCODE_ERRORS:
        text = _stdlib_dumps(data)
        # orjson also refuses lone surrogates, which no frame can carry: fail
        # here rather than in the server (only this path can see them).
        text.encode("utf-8")
        return text
    if _exponent(out) is None and _find(out, b"null") < 0 and _find(out, b"0.0000") < 0:
        return out.decode("utf-8")
    return _stdlib_dumps(data)


_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19

#: Nesting every reader accepts. orjson has no depth bound of its own (a
#: document a million brackets deep crashes the process), so only documents
#: with at most this many brackets in total, which cannot be nested deeper, go
#: to it; the rest go to the standard library, whose parser stops at Python's
#: recursion limit (about 1000) with an error instead. Counting brackets is
#: two C passes; the stdlib is about as fast as orjson on such bracket-heavy
#: documents anyway.
MAX_FAST_DEPTH: Final = 500


def loads(data: str | bytes, mode: str = "text") -> Any:
    """Parse JSON from a text frame (``str``) or a binary frame (UTF-8 ``bytes``).

    Accepts exactly what :func:`json.loads` accepts on the decoded text (NaN,
    integers of up to 4300 digits included); binary frames must be valid UTF-8.
    Nesting up to 500 levels is always accepted; deeper than Python's recursion
    limit (about 1000) never is.

    Raises:
        InvalidJSONError: not JSON, not UTF-8, nested too deeply, or an integer
            too long to convert (the stdlib's 4300-digit guard).
    """
    if isinstance(data, str):
        brackets = data.count("[") + data.count("{")
    else:
        brackets = data.count(b"[") + data.count(b"{")
    if brackets <= MAX_FAST_DEPTH:
        try:
            value = _orjson_loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            # orjson reads an integer outside [-2**63, 2**64 - 1] as a float (10**21
            # -> 1e21) where json keeps it exact. Such an integer is a run of at
            # least 19 digits (-9223372036854775809 has 19): map every digit to
            # "0" and look for 19 in a row, two C passes (~130 ns); only then is
            # the document parsed again (a false alarm, a 19-digit id or a long
            # fraction, costs just that). Inline: this runs for every message.
            raw = data if isinstance(data, bytes) else data.encode()
            if raw.translate(_TO_ZERO).find(_LONG_RUN) < 0:
                return value
    text: str
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSONError(
                f"the payload is not valid UTF-8 (byte {exc.start})", "", exc.start, mode=mode
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(exc.msg, exc.doc, exc.pos, mode=mode) from None
    except RecursionError:
        raise InvalidJSONError(
            "the document is nested too deeply (more than Python's recursion limit, "
            f"about {sys.getrecursionlimit()} levels)",
            "",
            0,
            mode=mode,
        ) from None
    except ValueError:
        # The stdlib's guard against quadratic int() (CVE-2020-10735): an
        # integer of more than sys.get_int_max_str_digits() digits.
        raise InvalidJSONError(
            f"an integer has more than {sys.get_int_max_str_digits()} digits",
            "",
            0,
            mode=mode,
        ) from None
