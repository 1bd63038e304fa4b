"""lilya.js against a real server: tokens that expire, refresh, a refused handshake, heartbeats.

Node (20, with its WebSocket client behind ``--experimental-websocket``) runs
``tests/js/against_server.mjs`` against uvicorn serving a ``ChannelsEndpoint``
whose tokens are ``NAME.EXPIRY`` and whose heartbeat pings every 0.5 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.support.servers import ROOT, serve

NODE = shutil.which("node")

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(
        NODE is None, reason="node is absent: apt-get install nodejs (.ci/run does)"
    ),
]


def run(scenario: str, port: int) -> dict[str, Any]:
    assert NODE is not None
    result = subprocess.run(
        [
            NODE,
            "--experimental-websocket",
            "--no-warnings",
            "tests/js/against_server.mjs",
            f"ws://127.0.0.1:{port}/ws",
            scenario,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def port() -> Any:
    with serve("tests.support.browser_apps:endpoint_app") as server:
        yield server.port
        log = server.log()
    assert "Traceback" not in log, log


def test_a_token_is_refreshed_before_it_expires_and_heartbeats_are_answered(port: int) -> None:
    report = run("refresh", port)
    assert report["state"] == "connected"
    assert report["user"] == "ann"
    assert report["position"]["offset"] == 1
    # Connected once, never dropped: no 4001 at expiry, no 1011 for a missed pong.
    assert report["states"] == [["connected", None]]
    assert len(report["tokens"]) >= 3  # the first, then a refresh before each expiry


def test_an_expired_token_closes_4001_and_without_a_new_one_the_client_stops(port: int) -> None:
    report = run("expire", port)
    assert report["state"] == "closed"
    assert report["tokens"][1] is None  # asked for a new token after the 4001
    assert ["closed", 4001] in report["states"]
    assert report["states"][0] == ["connected", None]


def test_a_handshake_refused_for_its_token_is_retried_with_a_fresh_one(port: int) -> None:
    report = run("refused", port)
    assert report["state"] == "connected"
    assert report["user"] == "cy"
    assert len(report["tokens"]) == 2
    assert report["states"][0] == ["disconnected", 1006]
