"""docs/porting.md: the worked FastAPI port is the original plus the page's diff, and it passes.

The page shows the FastAPI original (```py blocks, never run: FastAPI is not
installed), the change (a ```diff block) and the port (```python blocks).
These tests prove the port is exactly the original with that change applied,
so no logic was edited, and then run the ported tests against the ported app,
on asyncio and trio.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Any

import pytest

import lilya.testclient
from tests.support.docs import DOCS, python_blocks

PAGE = (DOCS / "porting.md").read_text()
ORIGINAL = re.findall(r"^```py\n(.*?)^```", PAGE, re.S | re.M)
DIFF = re.findall(r"^```diff\n(.*?)^```", PAGE, re.S | re.M)
PORTED = python_blocks("porting.md")


def apply_diff(source: str, diff: str) -> str:
    """Replace each run of ``-`` lines with the ``+`` lines after it (no context lines)."""
    lines = diff.splitlines()
    out = source
    index = 0
    while index < len(lines):
        removed: list[str] = []
        added: list[str] = []
        while index < len(lines) and lines[index].startswith("-"):
            removed.append(lines[index][1:])
            index += 1
        while index < len(lines) and lines[index].startswith("+"):
            added.append(lines[index][1:])
            index += 1
        old, new = "\n".join(removed) + "\n", "\n".join(added) + "\n"
        if old in out:
            out = out.replace(old, new, 1)
    return out


def test_the_page_shows_the_original_the_change_and_the_port() -> None:
    assert (len(ORIGINAL), len(DIFF), len(PORTED)) == (2, 1, 2)


@pytest.mark.parametrize("index", [0, 1], ids=["chat.py", "test_chat.py"])
def test_the_port_is_the_original_with_only_the_diff_applied(index: int) -> None:
    assert apply_diff(ORIGINAL[index], DIFF[0]) == PORTED[index]
    assert "fastapi" not in PORTED[index]


def test_every_line_of_the_diff_is_used() -> None:
    both = "".join(ORIGINAL)
    for line in DIFF[0].splitlines():
        if line.startswith("-"):
            assert line[1:] + "\n" in both, line


@pytest.fixture
def chat_module(anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Load the ported chat.py as the module ``chat`` and its tests, on *anyio_backend*."""
    chat = types.ModuleType("chat")
    exec(compile(PORTED[0], "docs/porting.md[chat.py]", "exec"), chat.__dict__)
    monkeypatch.setitem(sys.modules, "chat", chat)

    class BackendClient(lilya.testclient.TestClient):
        __test__ = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("backend", anyio_backend)
            super().__init__(*args, **kwargs)

    # The tests import TestClient from lilya.testclient: give them one that
    # runs the app on the backend under test.
    monkeypatch.setattr(lilya.testclient, "TestClient", BackendClient)
    namespace: dict[str, Any] = {"__name__": "test_chat"}
    exec(compile(PORTED[1], "docs/porting.md[test_chat.py]", "exec"), namespace)
    assert namespace["client"].async_backend["backend"] == anyio_backend
    return namespace


TESTS = re.findall(r"^def (test_\w+)\(", PORTED[1], re.M)


def test_the_ported_suite_has_its_three_tests() -> None:
    assert TESTS == [
        "test_the_page_is_served",
        "test_members_join_talk_and_leave",
        "test_echo_answers_until_the_client_leaves",
    ]


@pytest.mark.parametrize("name", TESTS)
def test_the_ported_tests_pass(chat_module: dict[str, Any], name: str) -> None:
    chat_module[name]()


def test_without_the_flag_the_echo_test_reports_that_nothing_was_raised(
    chat_module: dict[str, Any],
) -> None:
    chat_module["client"] = lilya.testclient.TestClient(sys.modules["chat"].app)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        chat_module["test_echo_answers_until_the_client_leaves"]()
