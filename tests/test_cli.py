"""``lilya run``: options reach uvicorn, the URL is printed, bad app paths end in one paragraph.

The in-process tests replace ``lilya._uvicorn.run`` to see what it would get; the
``server``-marked ones run the real command in a subprocess and talk to it with
a real WebSocket client.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import ipaddress
import json
import logging
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import lilya.__main__
from lilya import __version__, _uvicorn, cli
from lilya.limits import DEFAULT_MAX_MESSAGE_SIZE
from tests.support.servers import ROOT, RunningServer, serve

SEED_APP = "tests.support.seed_apps:app"


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Record the calls that would start uvicorn instead of serving."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(_uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(sys, "path", list(sys.path))  # --app-dir edits it
    return calls


def test_the_console_script_and_python_m_lilya_run_the_same_main() -> None:
    assert lilya.__main__.main is cli.main


def test_run_serves_the_loaded_app_on_uvicorn_and_prints_the_url(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.seed_apps import app

    assert cli.main(["run", SEED_APP, "--port", "8123"]) == 0
    [(served, options)] = uvicorn_calls
    assert served is app
    log_config = options.pop("log_config")
    assert options == {
        "host": "127.0.0.1",
        "port": 8123,
        "ws": "wsproto",
        "log_level": "info",
        "gc_tuning": True,
    }
    assert log_config["loggers"]["lilya"] == {
        "handlers": ["default"],
        "level": logging.INFO,
        "propagate": False,
    }
    out = capsys.readouterr().out
    assert "serving tests.support.seed_apps:app at http://127.0.0.1:8123" in out
    assert "(WebSockets at ws://127.0.0.1:8123)" in out
    assert "--ws wsproto" in out


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


def test_run_help_says_which_ws_implementation_is_fastest_for_fan_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert cli.FASTEST_FANOUT_WS in cli.WS_CHOICES
    assert f"Fastest for fan-out: {cli.FASTEST_FANOUT_WS}, about 0.6x wsproto's" in help_text
    assert "(docs/benchmarks.md), without wsproto's defences" in help_text


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


@pytest.mark.parametrize(
    ("argv", "env", "tuned"),
    [
        ([], None, True),
        (["--no-gc-tuning"], None, False),
        ([], "0", False),
        ([], "no", False),
        ([], "", True),
        (["--gc-tuning"], "0", True),
    ],
)
def test_gc_tuning_is_on_unless_the_flag_or_lilya_gc_tuning_turns_it_off(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: str | None,
    tuned: bool,
) -> None:
    if env is not None:
        monkeypatch.setenv("LILYA_GC_TUNING", env)
    else:
        monkeypatch.delenv("LILYA_GC_TUNING", raising=False)
    cli.main(["run", SEED_APP, *argv])
    assert uvicorn_calls[0][1]["gc_tuning"] is tuned


def test_a_lilya_gc_tuning_that_is_not_a_boolean_says_so_and_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LILYA_GC_TUNING", "sometimes")
    with pytest.raises(SystemExit) as info:
        cli.main(["run", SEED_APP])
    assert str(info.value) == (
        "lilya: LILYA_GC_TUNING='sometimes' is not true or false (1/0, yes/no)."
    )


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
    ("served", "threshold"),
    [
        (["tests.support.cli_apps:app"], 50_000),
        (["tests.support.cli_apps:app", "--no-gc-tuning"], 700),
    ],
    indirect=["served"],
)
def test_the_served_process_has_its_collector_tuned_once_started(
    served: RunningServer, threshold: int
) -> None:
    with connect(f"{served.ws_url}/gc", open_timeout=10, close_timeout=5) as ws:
        collector = json.loads(ws.recv(timeout=5))
    assert collector["threshold"] == threshold
    # What start-up allocated (modules, the app) is out of every collection.
    assert (collector["frozen"] > 10_000) is (threshold == 50_000)


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


# -- server settings passed through to uvicorn --------------------------------

CLI_APP = "tests.support.cli_apps:app"

PASSED_THROUGH = [
    (["--ws-max-size", "65536"], {"ws_max_size": 65536}),
    (
        ["--ws-ping-interval", "2.5", "--ws-ping-timeout", "0"],
        {"ws_ping_interval": 2.5, "ws_ping_timeout": 0.0},
    ),
    (["--ws-per-message-deflate", "false"], {"ws_per_message_deflate": False}),
    (["--ws-per-message-deflate", "Yes"], {"ws_per_message_deflate": True}),
    (["--timeout-graceful-shutdown", "5"], {"timeout_graceful_shutdown": 5}),
    (["--limit-concurrency", "100"], {"limit_concurrency": 100}),
    (["--no-proxy-headers"], {"proxy_headers": False}),
    (
        ["--proxy-headers", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2"],
        {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.1,10.0.0.2"},
    ),
]


@pytest.mark.parametrize(("argv", "expected"), PASSED_THROUGH)
def test_server_settings_pass_through_to_uvicorn_and_only_when_given(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], argv: list[str], expected: dict[str, Any]
) -> None:
    cli.main(["run", CLI_APP, *argv])
    _, options = uvicorn_calls[0]
    given = {key: value for key, value in options.items() if key in cli._PASSED_THROUGH}
    # The server's message limit is the app's largest unless given (lilya.limits).
    assert given == {"ws_max_size": DEFAULT_MAX_MESSAGE_SIZE, **expected}


@pytest.mark.parametrize(
    ("app", "limit"),
    [
        (CLI_APP, DEFAULT_MAX_MESSAGE_SIZE),
        ("tests.support.cli_apps:small", 64 * 1024),
        ("tests.support.cli_apps:mixed", 4 * 1024 * 1024),
        ("tests.support.cli_apps:unlimited", None),
        ("tests.support.seed_apps:app", None),
    ],
)
def test_the_servers_message_limit_is_the_apps_largest_max_message_size(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], app: str, limit: int | None
) -> None:
    cli.main(["run", app])
    assert uvicorn_calls[0][1].get("ws_max_size") == limit


def test_ws_max_size_given_wins_over_the_apps_limit(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
) -> None:
    cli.main(["run", "tests.support.cli_apps:small", "--ws-max-size", "1000"])
    assert uvicorn_calls[0][1]["ws_max_size"] == 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ws-max-size", "0"], "must be at least 1 byte, got 0"),
        (["--ws-max-size", "1MB"], "'1MB' is not a number of bytes"),
        (["--ws-ping-interval", "-1"], "must be a finite number of seconds >= 0, got -1"),
        (["--ws-ping-timeout", "nan"], "must be a finite number of seconds >= 0, got nan"),
        (["--ws-ping-timeout", "soon"], "'soon' is not a number of seconds"),
        (["--ws-per-message-deflate", "maybe"], "'maybe' is not true or false"),
        (["--timeout-graceful-shutdown", "1.5"], "'1.5' is not a whole number of seconds"),
        (["--timeout-graceful-shutdown", "-2"], "must be 0 or more seconds, got -2"),
        (["--limit-concurrency", "0"], "must be at least 1, got 0"),
    ],
)
def test_a_bad_server_setting_is_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["run", CLI_APP, *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_unusable_tls_files_end_in_one_paragraph_and_exit_2(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate\n")
    cases = [
        (["--ssl-keyfile", str(bogus)], "--ssl-keyfile needs --ssl-certfile"),
        (["--ssl-certfile", str(bogus)], f"Cannot serve TLS with --ssl-certfile {bogus}: "),
        (
            ["--ssl-certfile", str(tmp_path / "missing.pem"), "--ssl-keyfile", str(bogus)],
            f"and --ssl-keyfile {bogus}: [Errno 2] No such file or directory",
        ),
    ]
    for argv, message in cases:
        assert cli.main(["run", CLI_APP, *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lilya: ")
        assert message in err
        assert err.count("\n") == 1
    assert uvicorn_calls == []


def test_ws_auto_is_still_uvicorns_own_choice_and_says_what_it_lacks(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["run", CLI_APP, "--ws", "auto"])
    assert uvicorn_calls[0][1]["ws"] == "websockets-sansio"
    captured = capsys.readouterr()
    assert "--ws websockets-sansio" in captured.out
    assert captured.err.startswith("lilya: note: websockets-sansio never answers nor closes")
    assert "the default, --ws wsproto, does neither." in captured.err
    cli.main(["run", CLI_APP])
    assert capsys.readouterr().err == ""


def cli_server(*args: str) -> Any:
    return serve("", "lilya", command=lilya_run(CLI_APP, *args))


def read_frames(sock: socket.socket, timeout: float) -> list[tuple[int, bytes]]:
    """Read raw WebSocket frames (unmasked, from a server) until EOF or *timeout*."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 2 and data[1] < 126:  # a server's control frames are short
        frames.append((data[0] & 0x0F, data[2 : 2 + data[1]]))
        data = data[2 + data[1] :]
    return frames


@pytest.mark.server
def test_ws_max_size_reaches_the_server() -> None:
    with cli_server("--ws-max-size", "1024") as server:
        with server.connect("/echo") as ws:
            ws.send(b"x" * 1024)
            assert ws.recv(timeout=5) == b"x" * 1024
            ws.send(b"x" * 1025)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert "Traceback" not in server.log()


@pytest.mark.server
def test_the_server_refuses_what_no_route_of_the_app_takes_before_buffering_it() -> None:
    # No --ws-max-size: the app's largest max_message_size (64 KiB) is the server's.
    command = lilya_run("tests.support.cli_apps:small")
    with serve("", "lilya", command=command) as server:
        with server.connect("/echo", compression=None) as ws:
            ws.send(bytes(64 * 1024))
            assert ws.recv(timeout=5) == bytes(64 * 1024)
            with contextlib.suppress(ConnectionClosed):
                ws.send(bytes(64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert "Message exceeds the maximum size (65536 bytes)" in closed.value.rcvd.reason
        assert "Traceback" not in server.log()


@pytest.mark.server
def test_ws_max_size_counts_the_bytes_after_decompression() -> None:
    # A compression bomb: 1 MB of zeros travels as about 1 KB of deflate.
    with cli_server("--ws-max-size", "65536") as server:
        with server.connect("/echo") as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert extensions.startswith("permessage-deflate")
            ws.send(b"\0" * 1_000_000)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert "Traceback" not in server.log()


@pytest.mark.server
def test_ws_ping_interval_and_timeout_reach_the_server() -> None:
    # A raw client that never answers: the server pings after the interval,
    # then closes with 1011 once the timeout has passed without a pong.
    with cli_server("--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
            sock.sendall(
                b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101")
            leftover, frames = head.split(b"\r\n\r\n", 1)[1], read_frames(sock, 10)
            assert leftover == b""
        opcodes = [opcode for opcode, _ in frames]
        assert opcodes[0] == 0x9, frames  # ping
        assert frames[-1] == (0x8, struct.pack("!H", 1011) + b"keepalive ping timeout")


@pytest.mark.server
@pytest.mark.parametrize(("value", "offered"), [(None, True), ("false", False)])
def test_ws_per_message_deflate_reaches_the_server(value: str | None, offered: bool) -> None:
    args = ("--ws-per-message-deflate", value) if value else ()
    with cli_server(*args) as server, server.connect("/echo") as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert extensions.startswith("permessage-deflate") is offered


@pytest.mark.server
def test_timeout_graceful_shutdown_reaches_the_server() -> None:
    # /linger never returns: without the timeout, uvicorn would wait for it for ever.
    with cli_server("--timeout-graceful-shutdown", "1") as server:
        with server.connect("/linger") as ws:
            assert ws.recv(timeout=5) == "lingering"
            started = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            assert server.process.wait(15) == 0
        assert time.monotonic() - started < 10
        assert "timeout graceful shutdown exceeded" in server.log()


@pytest.mark.server
def test_limit_concurrency_reaches_the_server_but_caps_http_only() -> None:
    with cli_server("--limit-concurrency", "2") as server:
        with server.connect("/echo") as one, server.connect("/echo") as two:
            # uvicorn counts open WebSockets, but checks the cap only for HTTP:
            # a third handshake is still accepted (docs/cli.md says so).
            with server.connect("/echo") as three:
                three.send("3")
                assert three.recv(timeout=5) == "3"
            assert httpx.get(f"{server.http_url}/", timeout=5).status_code == 503
            for ws in (one, two):
                ws.send("still here")
                assert ws.recv(timeout=5) == "still here"
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.http_url}/", timeout=5).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3"}


@pytest.mark.server
@pytest.mark.parametrize(
    ("args", "seen"),
    [
        ((), {"scheme": "wss", "client": "10.1.2.3"}),
        (
            ("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"),
            {"scheme": "wss", "client": "10.1.2.3"},
        ),
        (("--forwarded-allow-ips", "10.9.9.9"), {"scheme": "ws", "client": "127.0.0.1"}),
        (("--no-proxy-headers",), {"scheme": "ws", "client": "127.0.0.1"}),
    ],
)
def test_proxy_headers_and_forwarded_allow_ips_reach_the_server(
    args: tuple[str, ...], seen: dict[str, str]
) -> None:
    with cli_server(*args) as server:
        with server.connect("/where", additional_headers=FORWARDED) as ws:
            assert json.loads(ws.recv(timeout=5)) == seen
        # The origin check follows the scheme the server trusts: behind a TLS
        # proxy, the page is https://, and only a trusted proxy makes it so.
        origin = f"https://127.0.0.1:{server.port}"
        if seen["scheme"] == "wss":
            with server.connect("/where", additional_headers=FORWARDED, origin=origin) as ws:
                assert json.loads(ws.recv(timeout=5))["scheme"] == "wss"
        else:
            with pytest.raises(InvalidStatus) as refused:
                server.connect("/where", additional_headers=FORWARDED, origin=origin)
            assert refused.value.response.status_code == 403


def self_signed(directory: Path, password: bytes | None = None) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and its key; return (certfile, keyfile).

    With *password*, the key file is encrypted with it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.mark.server
def test_tls_serves_wss_with_the_given_certificate(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    args = ("--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    with cli_server(*args) as server:
        context = ssl.create_default_context(cafile=str(certfile))
        url = f"wss://127.0.0.1:{server.port}/where"
        with connect(url, ssl=context, open_timeout=10, close_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5)) == {"scheme": "wss", "client": "127.0.0.1"}
        # A client that does not trust the certificate cannot connect at all.
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(url, ssl=ssl.create_default_context(), open_timeout=10)
        log = server.log()
    assert f"at https://127.0.0.1:{server.port} (WebSockets at wss://127.0.0.1:" in log


def handshake_request(target: str = "/echo", extra: bytes = b"") -> bytes:
    return (
        (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        ).encode()
        + extra
        + b"\r\n"
    )


def answer_of(sock: socket.socket, timeout: float = 5) -> tuple[bytes, bool]:
    """Read what the server says within *timeout*: (the bytes, whether it closed)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        if data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
            return data, False  # an open WebSocket, the app's to keep
    return data, False


@pytest.mark.server
def test_the_default_server_answers_hostile_handshakes_and_logs_no_error_or_traceback() -> None:
    with cli_server() as server:
        # Over-long request lines and headers: each is answered, none hangs.
        requests = [
            handshake_request("/echo?q=" + "a" * 16_000),
            handshake_request(extra=b"X-Big: " + b"b" * 16_000 + b"\r\n"),
            handshake_request(
                extra=b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 50) for i in range(300))
            ),
        ]
        for request in requests * 5:
            with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
                sock.sendall(request)
                data, closed = answer_of(sock)
                assert data.startswith(b"HTTP/1.1 101") or (
                    data.startswith(b"HTTP/1.1 4") and closed
                )
        # A request line that never ends: refused and closed once it is too long.
        with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
            sock.sendall(b"GET /echo?q=")
            with contextlib.suppress(OSError):
                for _ in range(64):
                    sock.sendall(b"a" * 65536)
            data, closed = answer_of(sock)
            assert data.startswith(b"HTTP/1.1 400")
            assert closed
        # A text frame that is not UTF-8: the connection ends, without a traceback.
        with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
            sock.sendall(handshake_request())
            data, _ = answer_of(sock)
            assert data.startswith(b"HTTP/1.1 101")
            payload = b"\xff\xfe"
            mask = b"\x01\x02\x03\x04"
            masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
            sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            _, closed = answer_of(sock)
            assert closed
        # Refused handshakes (cross-origin, and no such route): no false ERROR.
        for path, origin in (("/echo", "http://evil.example"), ("/nowhere", None)):
            with pytest.raises(InvalidStatus) as refused:
                server.connect(path, origin=origin)
            assert refused.value.response.status_code == 403
        time.sleep(0.5)
        log = server.log()
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log


def test_a_usable_tls_pair_passes_through_and_the_printed_url_is_https(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    certfile, keyfile = self_signed(tmp_path)
    argv = ["run", CLI_APP, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
    assert cli.main(argv) == 0
    _, options = uvicorn_calls[0]
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == (str(certfile), str(keyfile))
    assert (
        "at https://127.0.0.1:8000 (WebSockets at wss://127.0.0.1:8000)" in capsys.readouterr().out
    )


def test_an_encrypted_key_needs_its_password_and_never_prompts(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    certfile, keyfile = self_signed(tmp_path, password=b"s3cret")
    argv = ["run", CLI_APP, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--ssl-keyfile-password if the key is encrypted" in err
    assert uvicorn_calls == []
    assert cli.main([*argv, "--ssl-keyfile-password", "s3cret"]) == 0
    assert uvicorn_calls[0][1]["ssl_keyfile_password"] == "s3cret"
