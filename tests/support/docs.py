"""Read the code examples out of a Markdown page so tests can run them."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    """Return the ```python blocks of ``docs/<page>``, in order."""
    return _BLOCK.findall((DOCS / page).read_text())
