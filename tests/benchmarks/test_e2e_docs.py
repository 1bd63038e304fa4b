"""``benchmarks/e2e.py --write-docs`` rewrites its generated block and nothing else.

The tables of docs/benchmarks.md come from one run of the benchmark; the prose
around them is written by people. These runs feed a saved run's figures back
through ``--from-json`` (no servers, about a second) and check that the prose
survives, that the goal table says met or missed from the ratios, and that a
document without the markers is refused with a message saying what to add.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- e2e:start -->", "<!-- e2e:end -->"


def phase(frames_per_s: float, us_per_frame: float, p99_ms: float) -> dict[str, Any]:
    return {
        "frames": 1000,
        "expected": 1000,
        "lost": 0,
        "missing": 0,
        "gapped": 0,
        "timed_out": False,
        "duplicated": 0,
        "stale": 0,
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "seconds": 1.0,
        "cdf_ms": [],
        "frames_per_s": frames_per_s,
        "delivered_per_s": 50_000.0,
        "us_per_frame": us_per_frame,
    }


def row(stack: str, backend: str, n: int, rate: float, us: float, kb: float) -> dict[str, Any]:
    return {
        "setup": "uvicorn-websockets-sansio",
        "stack": stack,
        "backend": backend,
        "n": n,
        "workers": 1,
        "handshakes_per_s": 1000.0,
        "bytes_per_connection": kb * 1024,
        "offered": phase(rate, us, 10.0),
        "max_rate": phase(rate, us, 10.0),
    }


def saved_run(tmp_path: Path) -> Path:
    fanout = [
        row("raw", "memory://", 1000, 200_000, 6.0, 10.0),
        row("lilya", "memory://", 1000, 190_000, 7.0, 14.0),  # 0.95x: met; +4 KB: met
        row("raw", "memory://", 5000, 140_000, 6.0, 10.0),
        row("lilya", "memory://", 5000, 70_000, 9.0, 30.0),  # 0.50x: missed
    ]
    results = {
        "machine": {
            "date": "2026-12-02 03:00 UTC",
            "cpu": "a test CPU",
            "cpus": 2,
            "python": "3.11.7",
            "commit": "abc1234",
            "load_average": [0.1, 0.2, 0.3],
        },
        "command": "python benchmarks/e2e.py --write-docs",
        "seconds": 300.0,
        "fanout": fanout,
    }
    path = tmp_path / "e2e.json"
    path.write_text(json.dumps(results))
    return path


def write_docs(saved: Path, docs: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(ROOT / "benchmarks" / "e2e.py"), "--from-json", str(saved)]
    argv += ["--write-docs", "--docs", str(docs), "--no-plots"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_write_docs_replaces_only_the_generated_block(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    before = "# Benchmarks\n\nProse a person wrote.\n\n"
    after = "\n\nMore prose, and a closing note.\n"
    docs.write_text(f"{before}{START}\nthe tables of an older run\n{END}{after}")

    done = write_docs(saved_run(tmp_path), docs)

    assert done.returncode == 0, done.stdout + done.stderr
    text = docs.read_text()
    assert text.startswith(before + START + "\n") and text.endswith(END + after)
    block = text[len(before) + len(START) : -len(END + after)]
    assert "older run" not in block
    assert "commit abc1234" in block and "load average at start 0.10 / 0.20 / 0.30" in block
    assert "| max rate frames/s at N=1,000, x raw | lilya | 190,000 vs 200,000 | 0.95 |" in block
    assert "| max rate frames/s at N=5,000, x raw | lilya | 70,000 vs 140,000 | 0.50 |" in block
    lines = {line.split(" | ")[0]: line for line in block.splitlines() if "x raw" in line}
    assert lines["| max rate frames/s at N=1,000, x raw"].endswith("| met |")
    assert lines["| max rate frames/s at N=5,000, x raw"].endswith("| **missed** |")
    assert "![frames/s against subscribers](e2e-fanout.png)" in block


def test_write_docs_twice_gives_the_same_document(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"intro\n{START}\n{END}\noutro\n")
    saved = saved_run(tmp_path)

    assert write_docs(saved, docs).returncode == 0
    once = docs.read_text()
    assert write_docs(saved, docs).returncode == 0

    assert docs.read_text() == once


def test_write_docs_refuses_a_document_without_the_markers(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nno markers here\n")

    done = write_docs(saved_run(tmp_path), docs)

    assert done.returncode != 0
    assert START in done.stderr and "add them where the generated tables go" in done.stderr
    assert "Traceback" not in done.stderr
    assert docs.read_text() == "# Benchmarks\n\nno markers here\n"
