"""docs/porting.md: each worked port is its original plus the page's diff, and it passes.

The page shows each original (```py blocks), the change (a ```diff block) and
the port (```python blocks): a FastAPI chat, then a Starlette counter. These
tests prove each port is exactly its original with that change applied, so no
logic was edited, and run the ported tests against the ported app on asyncio
and trio. The Starlette original also runs, under Starlette (the ``bench``
extra installs it), so the page's claim that its tests pass there holds.
FastAPI is not installed: its original is only compared, not run.
"""

from __future__ import annotations

import re
import sys
import types
import warnings
from typing import Any

import pytest

import lilya.testclient
from tests.support.docs import DOCS, python_blocks

PAGE = (DOCS / "porting.md").read_text()
ORIGINAL = re.findall(r"^```py\n(.*?)^```", PAGE, re.S | re.M)
DIFF = re.findall(r"^```diff\n(.*?)^```", PAGE, re.S | re.M)
PORTED = python_blocks("porting.md")

#: (name, app module, index of the app block, of the tests block, of the diff)
PORTS = [("fastapi", "chat", 0, 1, 0), ("starlette", "counter", 2, 3, 1)]


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


def test_the_page_shows_each_original_its_change_and_its_port() -> None:
    assert (len(ORIGINAL), len(DIFF), len(PORTED)) == (4, 2, 4)


@pytest.mark.parametrize(
    "index", [0, 1, 2, 3], ids=["chat", "test_chat", "counter", "test_counter"]
)
def test_each_port_is_its_original_with_only_the_diff_applied(index: int) -> None:
    diff = DIFF[0] if index < 2 else DIFF[1]
    assert apply_diff(ORIGINAL[index], diff) == PORTED[index]
    assert "fastapi" not in PORTED[index]
    assert "starlette" not in PORTED[index]


@pytest.mark.parametrize("diff", [0, 1], ids=["fastapi", "starlette"])
def test_every_line_the_diff_removes_is_in_its_original(diff: int) -> None:
    both = ORIGINAL[2 * diff] + ORIGINAL[2 * diff + 1]
    for line in DIFF[diff].splitlines():
        if line.startswith("-"):
            assert line[1:] + "\n" in both, line


def load(
    module: str, app_code: str, tests_code: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Load *app_code* as the module *module*, then the tests that import it."""
    app_module = types.ModuleType(module)
    exec(compile(app_code, f"docs/porting.md[{module}.py]", "exec"), app_module.__dict__)
    monkeypatch.setitem(sys.modules, module, app_module)
    namespace: dict[str, Any] = {"__name__": f"test_{module}"}
    exec(compile(tests_code, f"docs/porting.md[test_{module}.py]", "exec"), namespace)
    return namespace


def backend_client(anyio_backend: str) -> type[lilya.testclient.TestClient]:
    class BackendClient(lilya.testclient.TestClient):
        """The lilya client, running the app on the backend under test."""

        __test__ = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("backend", anyio_backend)
            super().__init__(*args, **kwargs)

    return BackendClient


@pytest.fixture
def ported(
    request: pytest.FixtureRequest, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The ported app and tests of the port named by the test's ``port`` parameter."""
    _, module, app_index, tests_index, _ = next(p for p in PORTS if p[0] == request.param)
    client = backend_client(anyio_backend)
    # The tests import TestClient from lilya.testclient; they get the backend's.
    monkeypatch.setattr(lilya.testclient, "TestClient", client)
    namespace = load(module, PORTED[app_index], PORTED[tests_index], monkeypatch)
    if "client" in namespace:
        assert namespace["client"].async_backend["backend"] == anyio_backend
    return namespace


def names_of_tests(code: str) -> list[str]:
    return re.findall(r"^def (test_\w+)\(", code, re.M)


CASES = [
    pytest.param(port[0], name, id=f"{port[0]}-{name}")
    for port in PORTS
    for name in names_of_tests(PORTED[port[3]])
]


def test_the_ported_suites_have_their_tests() -> None:
    assert names_of_tests(PORTED[1]) == [
        "test_the_page_is_served",
        "test_members_join_talk_and_leave",
        "test_echo_answers_until_the_client_leaves",
    ]
    assert names_of_tests(PORTED[3]) == [
        "test_the_home_page_links_the_counter",
        "test_the_counter_adds_what_it_receives",
        "test_shout_answers_in_capitals",
    ]


@pytest.mark.parametrize(("ported", "name"), CASES, indirect=["ported"])
def test_the_ported_tests_pass(ported: dict[str, Any], name: str) -> None:
    ported[name]()


@pytest.mark.parametrize("ported", ["fastapi"], indirect=True)
def test_without_the_flag_the_echo_test_reports_that_nothing_was_raised(
    ported: dict[str, Any],
) -> None:
    ported["client"] = lilya.testclient.TestClient(sys.modules["chat"].app)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        ported["test_echo_answers_until_the_client_leaves"]()


@pytest.mark.parametrize("name", names_of_tests(ORIGINAL[3]))
def test_the_starlette_original_passes_under_starlette(
    name: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        # Starlette's client warns about its httpx dependency; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        starlette_testclient = pytest.importorskip("starlette.testclient")

        class BackendClient(starlette_testclient.TestClient):  # type: ignore[misc, name-defined]  # Starlette's, untyped here
            __test__ = False

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("backend", anyio_backend)
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(starlette_testclient, "TestClient", BackendClient)
        namespace = load("counter", ORIGINAL[2], ORIGINAL[3], monkeypatch)
        namespace[name]()
