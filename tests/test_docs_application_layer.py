"""Run every Python example in the application-layer docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("routing.md", "applications.md", "controllers.md", "errors.md")
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for index, code in enumerate(BLOCK.findall((DOCS / page).read_text())):
            found.append((f"{page}#{index + 1}", code))
    return found


def test_every_page_has_examples() -> None:
    pages = {name.split("#")[0] for name, _ in examples()}
    assert pages == set(PAGES)


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_the_example_runs(name: str, code: str) -> None:
    exec(compile(code, name, "exec"), {"__name__": f"docs_{name}"})
