"""What every Chromium test shares: the binary, its flags, and the skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "needs_chromium"]

#: Debian's Chromium (shared/browser-testing.md); .ci/run installs it.
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and quiet on a machine with no network beyond loopback.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent: apt-get install chromium (.ci/run does)",
)
