"""Path converters: how ``{id:int}`` in a route path matches a segment and types it.

A converter turns the text of one path parameter into a value when a route
matches (``convert``), and a value back into path text for reverse routing
(``to_string``), so what ``path_for`` builds is exactly what matching accepts.
Built in: ``str`` (the default), ``path``, ``int``, ``float`` and ``uuid``.
Add your own::

    class Hex(Converter[int]):
        regex = "[0-9a-f]+"

        def convert(self, value: str) -> int:
            return int(value, 16)

        def to_string(self, value: int) -> str:
            return format(value, "x")

    register_converter("hex", Hex())   # then Path("/color/{value:hex}", ...)
"""

from __future__ import annotations

import math
import uuid
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import quote

from lilya.exceptions import ImproperlyConfigured

__all__ = [
    "CONVERTERS",
    "Converter",
    "FloatConverter",
    "IntegerConverter",
    "PathConverter",
    "StringConverter",
    "UUIDConverter",
    "register_converter",
]

T = TypeVar("T")


class Converter(Generic[T]):
    """Turns one path segment into a typed value of type ``T`` and back.

    Subclass it (``class Hex(Converter[int])``) and :func:`register_converter`
    an instance to add your own. The base class is the ``str`` converter.

    Attributes:
        regex: what the parameter may look like in a path (no groups).
    """

    regex: ClassVar[str] = "[^/]+"

    def convert(self, value: str) -> T:
        """Return the typed value of a segment the regex matched.

        Raise :class:`ValueError` to refuse it: the route then does not match.
        """
        return value  # type: ignore[return-value]  # the base class is the str converter

    def to_string(self, value: T) -> str:
        """Return *value* as it goes into a path, percent-encoded.

        Raises:
            ValueError: *value* could never be matched by this converter.
        """
        text = str(value)
        if not text or "/" in text:
            raise ValueError(f"must be a non-empty string without '/', got {value!r}")
        return quote(text, safe="")


class StringConverter(Converter[str]):
    """``{name}`` or ``{name:str}``: one non-empty segment, no ``/``."""


class PathConverter(Converter[str]):
    """``{name:path}``: the rest of the path, ``/`` included (may be empty)."""

    regex = ".*"

    def to_string(self, value: Any) -> str:
        return quote(str(value), safe="/")


class IntegerConverter(Converter[int]):
    """``{name:int}``: decimal digits, converted to a non-negative ``int``."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            if isinstance(value, str) and value.isascii() and value.isdigit():
                return value
            raise ValueError(f"must be a non-negative int, got {value!r}")
        return str(value)


class FloatConverter(Converter[float]):
    """``{name:float}``: ``12`` or ``12.5``, converted to a non-negative ``float``."""

    regex = r"[0-9]+(?:\.[0-9]+)?"

    def convert(self, value: str) -> float:
        return float(value)

    def to_string(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a non-negative number, got {value!r}")
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"must be a finite non-negative number, got {value!r}")
        # Positional notation: "1e-07" would not match the regex.
        return f"{value:.15f}".rstrip("0").rstrip(".")


class UUIDConverter(Converter[uuid.UUID]):
    """``{name:uuid}``: a UUID, hyphens optional, any case, converted to :class:`uuid.UUID`.

    Reverse routing writes the canonical form (lower case, hyphenated).
    """

    regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: Any) -> str:
        try:
            return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except ValueError:
            raise ValueError(f"must be a UUID, got {value!r}") from None


#: The converters a template may name, by name. Add yours with :func:`register_converter`.
CONVERTERS: dict[str, Converter[Any]] = {
    "str": StringConverter(),
    "path": PathConverter(),
    "int": IntegerConverter(),
    "float": FloatConverter(),
    "uuid": UUIDConverter(),
}


def register_converter(name: str, converter: Converter[Any]) -> None:
    """Make ``{param:name}`` use *converter* in templates compiled from now on.

    Registering a name again replaces its converter, built-in ones included
    (as Starlette's ``register_url_convertor``): routes built before keep the
    one they compiled with.

    Raises:
        ImproperlyConfigured: *name* is not an identifier-like word, or
            *converter* is not a :class:`Converter`.
    """
    if not name or not name.replace("_", "a").isalnum():
        raise ImproperlyConfigured(
            f"A converter name must be a word like 'hex' or 'slug_id', got {name!r}."
        )
    if not isinstance(converter, Converter):
        raise ImproperlyConfigured(
            f"register_converter({name!r}, ...) needs a Converter instance (subclass "
            f"lilya.converters.Converter), got {converter!r}."
        )
    CONVERTERS[name] = converter
