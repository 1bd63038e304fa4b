"""Path templates: ``"/rooms/{room}/{id:int}"`` compiled once into a regex and a formatter.

Routing matches a request path against a compiled template and gets typed
parameters back; reverse routing fills the same template from parameters. Both
directions use one :class:`~lilya.converters.Converter` per parameter, so what ``path_for`` builds
is exactly what matching accepts.

Values arrive decoded: ASGI servers put the percent-decoded path in
``scope["path"]``. Reverse routing therefore percent-encodes what it inserts
(``"a b"`` becomes ``a%20b``), and the server decodes it back on the way in.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lilya.converters import CONVERTERS, Converter
from lilya.datastructures import URLPath
from lilya.exceptions import ImproperlyConfigured, NoMatchFound
from lilya.types import Scope

__all__ = [
    "CompiledPath",
    "Match",
    "compile_path",
    "get_route_path",
    "matched_scope",
    "normalize_root_path",
    "own_path_for",
]


_PARAM = re.compile(r"{([^{}:]*)(?::([^{}]*))?}")


@dataclass(frozen=True)
class CompiledPath:
    """A path template, compiled: match paths with it, or fill it from parameters.

    Attributes:
        template: the template as written (``"/items/{id:int}"``).
        regex: the compiled pattern; anchored at both ends, or only at the start
            (up to a ``/`` or the end) for an ``Include`` prefix.
        converters: the converter of each parameter, in template order.
    """

    template: str
    regex: re.Pattern[str]
    converters: Mapping[str, Converter[Any]]
    _format: str

    @property
    def param_names(self) -> frozenset[str]:
        """The names of the template's parameters."""
        return frozenset(self.converters)

    def match(self, path: str) -> tuple[dict[str, Any], str] | None:
        """Match *path*; return the typed parameters and the unmatched rest, or ``None``.

        The rest is ``""`` for a whole-path template. A value its converter
        refuses (``ValueError``) means no match, never an error.
        """
        found = self.regex.match(path)
        if found is None:
            return None
        params: dict[str, Any] = {}
        try:
            for name, text in found.groupdict().items():
                params[name] = self.converters[name].convert(text)
        except ValueError:
            return None
        return params, path[found.end() :]

    def format(self, params: Mapping[str, Any]) -> str:
        """Fill the template with *params* (exactly its parameters).

        Raises:
            ValueError: a value its converter cannot write (e.g. ``-1`` for ``int``).
        """
        values = {}
        for name, converter in self.converters.items():
            try:
                values[name] = converter.to_string(params[name])
            except ValueError as exc:
                raise ValueError(
                    f"Path parameter {name!r} of {self.template!r} {exc}; "
                    "pass a value the route could match."
                ) from None
        return self._format.format_map(values)


def _check_literal(literal: str, template: str) -> None:
    if "{" in literal or "}" in literal:
        raise ImproperlyConfigured(
            f"Unbalanced brace in route path {template!r}; parameters look like {{name}} "
            "or {name:int}."
        )


def compile_path(template: str, *, prefix: bool = False) -> CompiledPath:
    """Compile *template* once, for matching and for reverse routing.

    Args:
        template: ``""`` or a path starting with ``/``; parameters are
            ``{name}`` or ``{name:converter}``.
        prefix: compile an ``Include`` prefix, which matches the start of a
            path up to a ``/`` or the end (``/api`` matches ``/api`` and
            ``/api/x``, not ``/apix``).

    Raises:
        ImproperlyConfigured: the template does not start with ``/``, names an
            unknown converter, repeats a parameter, or (for a prefix) uses
            ``path``, which would swallow the routes below it.
    """
    if template and not template.startswith("/"):
        raise ImproperlyConfigured(f"Route path {template!r} must start with '/'.")
    pattern, fmt, converters, end = "^", "", {}, 0
    for found in _PARAM.finditer(template):
        name, kind = found.group(1), found.group(2) or "str"
        if not name.isidentifier():
            raise ImproperlyConfigured(
                f"Parameter {found.group(0)!r} in {template!r} needs a name that is a Python "
                "identifier, like {room} or {id:int}."
            )
        if name in converters:
            raise ImproperlyConfigured(f"Parameter {name!r} appears twice in {template!r}.")
        if kind not in CONVERTERS:
            raise ImproperlyConfigured(
                f"Unknown path converter {kind!r} in {template!r}; use one of "
                f"{', '.join(sorted(CONVERTERS))} or register_converter() your own."
            )
        if prefix and kind == "path":
            raise ImproperlyConfigured(
                f"An Include prefix cannot use the 'path' converter ({template!r}): it would "
                "swallow the paths of the routes below it."
            )
        literal = template[end : found.start()]
        _check_literal(literal, template)
        pattern += re.escape(literal) + f"(?P<{name}>{CONVERTERS[kind].regex})"
        fmt += literal.replace("{", "{{").replace("}", "}}") + "{" + name + "}"
        converters[name] = CONVERTERS[kind]
        end = found.end()
    tail = template[end:]
    _check_literal(tail, template)
    pattern += re.escape(tail) + ("(?=/|$)" if prefix else "$")
    fmt += tail
    return CompiledPath(template, re.compile(pattern), converters, fmt)


# -- matching and reverse routing, shared by every route ----------------------


class Match(enum.Enum):
    """How well a route matches a connection."""

    NONE = 0
    PARTIAL = 1  # the path matched, the HTTP method did not
    FULL = 2


def normalize_root_path(scope: Scope) -> None:
    """Drop a trailing ``/`` from ``scope["root_path"]``, and the ``//`` it left in the path.

    ``--root-path /api/`` means ``/api``; uvicorn joins it to the request path
    as ``/api//rooms/x``. The router rewrites both once, where it receives the
    scope, so every layer below (an ``Include``'s own root path, a mounted
    app, ``websocket.url``) sees ``/api`` and ``/api/rooms/x``.
    """
    given = scope.get("root_path") or ""
    if not given.endswith("/"):
        return
    path: str = scope.get("path") or ""
    if path.startswith(given + "/"):
        scope["path"] = given + path[len(given) + 1 :]
    scope["root_path"] = given.rstrip("/")


def get_route_path(scope: Scope) -> str:
    """Return the part of ``scope["path"]`` below ``scope["root_path"]``.

    ASGI says ``path`` includes ``root_path`` (uvicorn does so); some servers
    and older apps leave it out, so a path that does not start with the root
    path is taken as already relative. A ``root_path`` ending in ``/``
    (``--root-path /api/``) means the same as without it; uvicorn then joins
    it to the path as ``/api//items``, which is read as ``/api/items``.
    """
    path: str = scope["path"]
    given: str = scope.get("root_path", "") or ""
    root_path = given.rstrip("/")
    if given != root_path and path.startswith(given + "/"):
        path = given + path[len(given) + 1 :]
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest.startswith("/"):
            return rest
    return path


def own_path_for(
    route_name: str | None,
    compiled: CompiledPath,
    protocol: str,
    name: str,
    params: Mapping[str, Any],
) -> URLPath:
    """Fill *compiled* with *params* if this route is called *name* and takes exactly them.

    Raises:
        NoMatchFound: another name, other params, or a value its converter refuses.
    """
    if name != route_name:
        raise NoMatchFound(name, params)
    expected = compiled.param_names
    if set(params) != expected:
        wanted = ", ".join(sorted(expected)) or "none"
        raise NoMatchFound(
            name, params, hint=f"route {name!r} ({compiled.template!r}) takes params: {wanted}"
        )
    try:
        return URLPath(compiled.format(params), protocol)
    except ValueError as exc:
        raise NoMatchFound(name, params, hint=str(exc)) from None


def matched_scope(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    """The scope keys a matched route sets: its params added to any from outer Includes."""
    return {"path_params": {**(scope.get("path_params") or {}), **params}}
