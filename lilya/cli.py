"""The ``lilya`` command line: ``lilya run module:app`` serves an app on uvicorn.

It is a thin layer over ``uvicorn.run`` with three additions: the app is loaded
by lilya first, so an import path that does not load ends in one readable
paragraph (:mod:`lilya._importer`) and exit code 1; the URL being served is
printed; and ``--ws auto`` is resolved and shown, because which WebSocket
implementation uvicorn runs changes what clients see (``docs/servers.md``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

from lilya import __version__
from lilya._importer import AppImportError, add_app_dir, import_app

__all__ = ["build_parser", "main", "resolve_ws", "served_url"]

#: uvicorn's WebSocket implementations, as ``--ws`` takes them.
WS_CHOICES: Final = ("auto", "websockets", "websockets-sansio", "wsproto")
LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug", "trace")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``lilya`` command."""
    parser = argparse.ArgumentParser(
        prog="lilya", description="lilya: a WebSocket-first ASGI toolkit."
    )
    parser.add_argument("--version", action="version", version=f"lilya {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="serve an ASGI app on uvicorn",
        description="Serve the ASGI app at APP (module:attribute) on uvicorn.",
    )
    run.add_argument("app", metavar="APP", help='the app as "module:attribute", e.g. main:app')
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    run.add_argument("--port", type=_port, default=8000, help="port to bind (default 8000)")
    run.add_argument(
        "--reload", action="store_true", help="restart when a Python file changes (development)"
    )
    run.add_argument(
        "--workers", type=_positive_int, default=1, help="number of worker processes (default 1)"
    )
    run.add_argument(
        "--ws",
        choices=WS_CHOICES,
        default="auto",
        help="uvicorn's WebSocket implementation (default auto: websockets-sansio "
        "when the websockets package is installed, else wsproto)",
    )
    run.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="log level (default info)"
    )
    run.add_argument(
        "--factory",
        action="store_true",
        help="APP is a function taking no arguments that returns the app",
    )
    run.add_argument(
        "--app-dir",
        default=".",
        help="directory to import APP from, put first on sys.path (default: current directory)",
    )
    return parser


def resolve_ws(ws: str) -> str:
    """Return the implementation uvicorn will use for ``--ws`` *ws* (``auto`` resolved).

    Mirrors ``uvicorn.protocols.websockets.auto``: websockets' Sans-I/O
    implementation when the websockets package is installed, else wsproto.
    """
    if ws != "auto":
        return ws
    if importlib.util.find_spec("websockets") is not None:
        return "websockets-sansio"
    if importlib.util.find_spec("wsproto") is not None:
        return "wsproto"
    return "none"


def served_url(host: str, port: int) -> str:
    """Return the ``http://`` URL a person opens for a server bound to *host*:*port*.

    A wildcard address is not something a browser can open, so it becomes
    ``localhost``; an IPv6 literal gets its brackets.
    """
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    add_app_dir(args.app_dir)
    try:
        app = import_app(args.app, factory=args.factory)
    except AppImportError as exc:
        print(f"lilya: {exc}", file=err)
        return 1

    import uvicorn  # here, so that `lilya --help` and import errors stay fast

    ws = resolve_ws(args.ws)
    url = served_url(args.host, args.port)
    processes = " with auto-reload" if args.reload else ""
    if args.workers > 1:
        processes = f" in {args.workers} worker processes"
    print(
        f"lilya: serving {args.app} at {url} (WebSockets at ws{url[4:]}) on uvicorn "
        f"with --ws {ws}{processes}. Press Ctrl+C to stop.",
        file=out,
        flush=True,
    )
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "ws": ws,
        "log_level": args.log_level,
    }
    if args.reload or args.workers > 1:
        # uvicorn re-imports the app in each child process, so it needs the path;
        # loading it above has already proved that the path loads.
        options.update(
            reload=args.reload,
            workers=args.workers,
            factory=args.factory,
            reload_dirs=[os.path.abspath(args.app_dir)] if args.reload else None,
        )
        uvicorn.run(args.app, **options)
    else:
        uvicorn.run(app, **options)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lilya`` command with *argv* (default: ``sys.argv[1:]``); return its exit code.

    Usage errors (unknown option, bad value) exit with code 2 through argparse;
    an app that does not load returns 1 after one paragraph on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reload and args.workers > 1:
        parser.error("--reload and --workers cannot be combined; use one or the other")
    return _run(args, sys.stdout, sys.stderr)
