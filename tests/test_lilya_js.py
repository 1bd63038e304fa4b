"""lilya.js's own tests (``tests/js/``, Node's test runner) as part of the suite.

They drive the client against an in-process fake server (reconnect policy,
resume, retries, heartbeat) and check its size with esbuild; a failure there
fails this test, with Node's report in the message. ``npm ci`` at the repo root
installs esbuild (``.ci/run`` does).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.servers import ROOT

NODE = shutil.which("node")


@pytest.mark.skipif(
    NODE is None, reason="node is absent: apt-get install nodejs npm (.ci/run does)"
)
def test_the_node_unit_tests_of_lilya_js_pass() -> None:
    assert NODE is not None
    if not (ROOT / "node_modules" / "esbuild").is_dir():
        pytest.fail("esbuild is not installed: run `npm ci` at the repo root (.ci/run does)")
    result = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "fail 0" in report.replace("ℹ ", ""), report
