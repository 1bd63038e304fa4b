"""The end-to-end benchmark keeps working: ``benchmarks/e2e.py --quick`` on real processes.

Benchmarks are never part of the tests; this runs the real one at tiny sizes
(20 and 50 subscribers, a few hundred frames) so that a change that breaks it
is caught here rather than on the day someone needs its figures. It checks
what the benchmark itself guarantees: every frame arrived once and in order,
and the plots and the JSON were written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_delivers_every_frame_and_writes_its_plots(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "e2e.py"), "--quick"]
    argv += ["--setups", "uvicorn-websockets-sansio", "--sections", "echo,fanout,workers"]
    argv += ["--redis", "redis://127.0.0.1:6379/9", "--json", str(out), "--plots", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads(out.read_text())
    stacks = {(row["stack"], row["backend"]) for row in results["fanout"]}
    assert ("raw", "memory://") in stacks and ("lilya", "redis://127.0.0.1:6379/9") in stacks
    assert ("protocol", "memory://") in stacks
    for row in results["fanout"] + results["workers"]:
        for phase in ("offered", "max_rate"):
            assert row[phase]["lost"] == 0 and row[phase]["duplicated"] == 0, row
            assert row[phase]["frames"] > 0, row
    assert [row["workers"] for row in results["workers"]] == [1, 2]
    assert {row["mode"] for row in results["echo"]} == {"text", "json"}
    assert all(row["raw"] > 0 and row["lilya"] > 0 for row in results["echo"])
    assert "ratios against raw, same run" in done.stdout
    for name in ("e2e-fanout.png", "e2e-latency.png", "e2e-memory.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_a_window_of_publishes_in_flight_still_delivers_every_frame_once_in_order(
    tmp_path: Path,
) -> None:
    # Concurrent publishes on redis:// share one round trip and must keep
    # their call order: the load client checks every frame's sequence.
    out = tmp_path / "e2e.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "e2e.py"), "--quick", "--no-plots"]
    argv += ["--sections", "fanout", "--stacks", "lilya", "--publish-window", "8"]
    argv += ["--redis", "redis://127.0.0.1:6379/9", "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    rows = json.loads(out.read_text())["fanout"]
    assert {(row["stack"], row["backend"]) for row in rows} == {
        ("lilya", "memory://"),
        ("lilya", "redis://127.0.0.1:6379/9"),
    }
    for row in rows:
        assert row["window"] == 8
        for phase in ("offered", "max_rate"):
            assert row[phase]["lost"] == 0 and row[phase]["duplicated"] == 0, row
            assert row[phase]["frames"] > 0, row
