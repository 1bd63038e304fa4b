"""``lilya run``: options reach uvicorn, the URL is printed, bad app paths end in one paragraph.

The in-process tests replace ``uvicorn.run`` to see what it would get; the
``server``-marked ones run the real command in a subprocess and talk to it with
a real WebSocket client.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import lilya.__main__
from lilya import __version__, cli
from tests.support.servers import ROOT, RunningServer, serve

SEED_APP = "tests.support.seed_apps:app"


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Record ``uvicorn.run`` calls instead of serving."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(sys, "path", list(sys.path))  # --app-dir edits it
    return calls


def test_the_console_script_and_python_m_lilya_run_the_same_main() -> None:
    assert lilya.__main__.main is cli.main


def test_run_serves_the_loaded_app_on_uvicorn_and_prints_the_url(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.seed_apps import app

    assert cli.main(["run", SEED_APP, "--port", "8123"]) == 0
    assert uvicorn_calls == [
        (app, {"host": "127.0.0.1", "port": 8123, "ws": "websockets-sansio", "log_level": "info"})
    ]
    out = capsys.readouterr().out
    assert "serving tests.support.seed_apps:app at http://127.0.0.1:8123" in out
    assert "(WebSockets at ws://127.0.0.1:8123)" in out
    assert "--ws websockets-sansio" in out


def test_host_ws_and_log_level_are_passed_to_uvicorn(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
) -> None:
    argv = ["run", SEED_APP, "--host", "::1", "--ws", "wsproto", "--log-level", "warning"]
    cli.main(argv)
    _, options = uvicorn_calls[0]
    assert (options["host"], options["ws"], options["log_level"]) == ("::1", "wsproto", "warning")


def test_reload_gives_uvicorn_the_import_path_and_watches_the_app_dir(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "reload_target.py").write_text("async def app(scope, receive, send): pass\n")
    try:
        cli.main(["run", "reload_target:app", "--reload", "--app-dir", str(tmp_path)])
    finally:
        sys.modules.pop("reload_target", None)
    app, options = uvicorn_calls[0]
    assert app == "reload_target:app"
    assert options["reload"] is True
    assert options["workers"] == 1
    assert options["reload_dirs"] == [str(tmp_path)]
    assert sys.path[0] == str(tmp_path)
    assert "with auto-reload" in capsys.readouterr().out


def test_workers_give_uvicorn_the_import_path_and_the_factory_flag(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["run", "tests.support.seed_apps:seed_hello", "--workers", "3"])
    app, options = uvicorn_calls[0]
    assert app == "tests.support.seed_apps:seed_hello"
    assert (options["workers"], options["reload"], options["factory"]) == (3, False, False)
    assert options["reload_dirs"] is None
    assert "in 3 worker processes" in capsys.readouterr().out


def test_a_path_that_does_not_load_prints_one_paragraph_and_exits_1(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "tests.support.seed_apps:nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith('lilya: Cannot load "tests.support.seed_apps:nope": ')
    assert captured.err.count("\n") == 1
    assert uvicorn_calls == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", SEED_APP, "--workers", "0"], "must be at least 1, got 0"),
        (["run", SEED_APP, "--workers", "two"], "'two' is not a whole number"),
        (["run", SEED_APP, "--port", "http"], "'http' is not a port number"),
        (["run", SEED_APP, "--port", "70000"], "70000 is not a port number (0-65535)"),
        (["run", SEED_APP, "--ws", "tornado"], "invalid choice: 'tornado'"),
        (["run", SEED_APP, "--reload", "--workers", "2"], "--reload and --workers cannot be"),
        (["serve", SEED_APP], "invalid choice: 'serve'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_a_bad_option_is_a_usage_error_with_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"lilya {__version__}\n"


def test_ws_auto_resolves_like_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.resolve_ws("wsproto") == "wsproto"
    assert cli.resolve_ws("auto") == "websockets-sansio"
    installed = {"wsproto"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name in installed else None
    )
    assert cli.resolve_ws("auto") == "wsproto"
    installed.clear()
    assert cli.resolve_ws("auto") == "none"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://localhost:8000"),
        ("::", "http://localhost:8000"),
        ("::1", "http://[::1]:8000"),
        ("example.test", "http://example.test:8000"),
    ],
)
def test_the_printed_url_is_one_a_browser_can_open(host: str, url: str) -> None:
    assert cli.served_url(host, 8000) == url


# -- the real command ---------------------------------------------------------


def lilya_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "lilya", "run", *args, "--port", "{port}"]


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve("", "lilya", command=lilya_run(*request.param)) as server:
        yield server


@pytest.mark.server
@pytest.mark.parametrize("served", [[SEED_APP]], indirect=True)
def test_python_m_lilya_run_serves_a_real_client_and_prints_the_url(
    served: RunningServer,
) -> None:
    with connect(f"{served.ws_url}/seed/hello", open_timeout=10, close_timeout=5) as ws:
        assert ws.recv(timeout=5) == b'{"message":"Hello, world!"}'
    log = served.log()
    assert f"lilya: serving {SEED_APP} at http://127.0.0.1:{served.port}" in log
    assert "Traceback" not in log


@pytest.mark.server
@pytest.mark.parametrize(
    ("served", "phrase"),
    [([SEED_APP, "--ws", "wsproto"], ""), ([SEED_APP, "--ws", "websockets"], "Forbidden")],
    indirect=["served"],
)
def test_ws_picks_the_uvicorn_implementation(served: RunningServer, phrase: str) -> None:
    # wsproto answers a refused handshake with no reason phrase, websockets with one.
    with pytest.raises(InvalidStatus) as info:
        connect(f"{served.ws_url}/reject", open_timeout=10)
    assert info.value.response.status_code == 403
    assert info.value.response.reason_phrase == phrase


@pytest.mark.server
@pytest.mark.parametrize("served", [[SEED_APP, "--workers", "2"]], indirect=True)
def test_workers_start_that_many_processes(served: RunningServer) -> None:
    deadline = time.monotonic() + 20
    while len(set(re.findall(r"Started server process \[(\d+)\]", served.log()))) < 2:
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.1)
    with connect(f"{served.ws_url}/seed/hello", open_timeout=10, close_timeout=5) as ws:
        assert ws.recv(timeout=5) == b'{"message":"Hello, world!"}'


@pytest.mark.server
def test_reload_serves_the_new_code_after_a_file_changes(tmp_path: Path) -> None:
    source = (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'websocket':\n"
        "        return\n"
        "    await receive()\n"
        "    await send({'type': 'websocket.accept'})\n"
        "    await send({'type': 'websocket.send', 'text': %r})\n"
        "    await send({'type': 'websocket.close', 'code': 1000})\n"
    )
    module = tmp_path / "reloading_app.py"
    module.write_text(source % "v1")
    command = lilya_run("reloading_app:app", "--reload", "--app-dir", str(tmp_path))
    with serve("", "lilya", command=command) as server:

        def version() -> str:
            with connect(server.ws_url, open_timeout=10, close_timeout=5) as ws:
                return str(ws.recv(timeout=5))

        assert version() == "v1"
        deadline = time.monotonic() + 20
        while version() != "v2":
            assert time.monotonic() < deadline, server.log()
            # Write again until seen: the watcher may start after the first server.
            module.write_text(source % "v2")
            time.sleep(0.3)


BAD_PATHS = {
    "syntax": ("seed_apps.app", 'Cannot load "seed_apps.app": it has no colon.'),
    "module not found": ("tests.support.nope:app", 'module "tests.support.nope" was not found'),
    "error while importing": (
        "explodes_on_import:app",
        "raised ZeroDivisionError: division by zero (at ",
    ),
    "attribute missing": (
        "tests.support.seed_apps:ap",
        'module "tests.support.seed_apps" has no attribute "ap". Did you mean "app"?',
    ),
}


@pytest.mark.server
@pytest.mark.parametrize("kind", list(BAD_PATHS))
def test_an_app_path_that_does_not_load_exits_1_with_one_paragraph(
    kind: str, tmp_path: Path
) -> None:
    path, expected = BAD_PATHS[kind]
    (tmp_path / "explodes_on_import.py").write_text("x = 1 / 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "lilya", "run", path, "--app-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f'lilya: Cannot load "{path}": ')
    assert expected in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_the_error_examples_in_docs_cli_md_are_what_lilya_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    examples = re.findall(r"^\$ lilya run (\S+)\n(lilya: Cannot load .*)$", docs, re.MULTILINE)
    assert len(examples) == 5
    (tmp_path / "main.py").write_text(
        "async def app(scope, receive, send):\n    pass\n\ndef create_app():\n    return app\n"
    )
    (tmp_path / "chat.py").write_text('"""Chat."""\n\nimport redis_extras\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        for path, printed in examples:
            assert cli.main(["run", path]) == 1
            expected = printed.replace("/home/me/project", str(tmp_path))
            assert capsys.readouterr().err == expected + "\n"
    finally:
        sys.modules.pop("main", None)
        sys.modules.pop("chat", None)
