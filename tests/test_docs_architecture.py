"""docs/architecture.md: the map names every private module, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lilya
from lilya._handshake import HandshakeTimeout
from lilya.apps import Lilya
from lilya.middleware.exceptions import ExceptionHandlerMiddleware
from lilya.middleware.origin import OriginMiddleware
from lilya.middleware.server_error import ServerErrorMiddleware
from lilya.routing import Router
from tests.support.docs import DOCS

PAGE = (DOCS / "architecture.md").read_text()
PACKAGE = Path(lilya.__file__).resolve().parent
ROOT = PACKAGE.parent


def private_table() -> list[str]:
    block = PAGE.split("<!-- private-modules:start -->")[1].split("<!-- private-modules:end -->")[0]
    return re.findall(r"^\| `(lilya/[^`]+\.py)` \|", block, re.M)


def test_the_private_module_table_lists_every_private_module_once() -> None:
    on_disk = sorted(
        str(path.relative_to(ROOT)) for path in PACKAGE.rglob("_*.py") if path.name != "__init__.py"
    )
    on_disk = [name for name in on_disk if not name.endswith("__main__.py")]
    listed = private_table()
    assert len(listed) == len(set(listed))
    assert sorted(listed) == on_disk


def test_every_module_the_page_names_exists() -> None:
    for name in re.findall(r"`(lilya/[\w/]+\.py)`", PAGE):
        assert (ROOT / name).is_file(), name


def test_the_diagram_shows_the_layers_in_the_order_the_app_builds_them() -> None:
    stack: Any = Lilya(routes=[]).build_middleware_stack()
    layers = [type(stack).__name__]
    inner = stack.app
    while not isinstance(inner, Router):
        layers.append(type(inner).__name__)
        inner = inner.app
    layers.append(type(inner).__name__)
    assert layers == [
        HandshakeTimeout.__name__,
        ServerErrorMiddleware.__name__,
        OriginMiddleware.__name__,
        ExceptionHandlerMiddleware.__name__,
        Router.__name__,
    ]
    diagram = PAGE.split("```text")[1].split("```")[0]
    positions = [diagram.index(name) for name in [*layers, "WebSocketPath", "ConnectionState"]]
    assert positions == sorted(positions)
