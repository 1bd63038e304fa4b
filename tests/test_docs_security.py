"""docs/security.md: its example behaves as it says, and every test it cites exists."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from lilya.testclient import TestClient, WebSocketDenialResponse
from tests.support.docs import DOCS, python_blocks
from tests.support.servers import ROOT

PAGE = (DOCS / "security.md").read_text()


def example() -> dict[str, Any]:
    [block] = python_blocks("security.md")
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/security.md", "exec"), namespace)
    return namespace


def opens(app: Any, origin: str | None) -> bool | int:
    """True when the socket opens and says hello; else the denial's status code."""
    headers = {"origin": origin} if origin else None
    try:
        with TestClient(app).websocket_connect("/ws", headers=headers) as session:
            return session.receive_text() == "hello"
    except WebSocketDenialResponse as denial:
        return denial.status_code


@pytest.mark.parametrize(
    ("app", "origin", "allowed"),
    [
        ("same_origin_only", "http://testserver", True),
        ("same_origin_only", "http://evil.example", False),
        ("same_origin_only", None, True),
        ("one_more", "https://app.example.com", True),
        ("one_more", "https://other.example.com", False),
        ("subdomains", "https://a.example.com", True),
        ("subdomains", "https://example.com", False),
        ("browsers_only", None, False),
        ("browsers_only", "http://testserver", True),
        ("anyone", "http://evil.example", True),
    ],
)
def test_the_example_apps_do_what_their_comments_say(
    app: str, origin: str | None, allowed: bool
) -> None:
    assert opens(example()[app], origin) == (True if allowed else 403)


def test_every_test_the_threat_table_cites_exists() -> None:
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", PAGE)
    assert len(cited) >= 15
    for path, name in cited:
        source = ROOT / path
        assert source.exists(), path
        if name:
            tree = ast.parse(source.read_text())
            functions = (ast.FunctionDef, ast.AsyncFunctionDef)
            names = {node.name for node in ast.walk(tree) if isinstance(node, functions)}
            assert name in names, f"{path}::{name}"


def test_no_row_is_left_planned_and_idle_connections_have_their_defence() -> None:
    rows = [line for line in PAGE.splitlines() if "**Planned**" in line]
    assert rows == []
    [idle] = [line for line in PAGE.splitlines() if line.startswith("| **Idle connections**")]
    assert "`idle_timeout`" in idle and "1001" in idle
