"""The ``lilya`` command line: ``lilya run module:app`` serves an app on uvicorn.

It is a thin layer over uvicorn with these additions: on SIGTERM or SIGINT a
lilya app drains (new handshakes refused with 503, open sockets closed in
batches, handlers finished) before uvicorn stops, and the stop exits 0
(:mod:`lilya._uvicorn`); the app is loaded
by lilya first, so an import path that does not load ends in one readable
paragraph (:mod:`lilya._importer`) and exit code 1; the URL being served is
printed; the WebSocket implementation defaults to the one that holds against a
hostile client (``wsproto``: ``docs/servers.md`` has the measurements) and is
shown, ``--ws auto`` resolved; TLS files are checked before the server starts;
and lilya's own log lines (the ``lilya`` logger: refused handshakes, answered
errors) are printed in uvicorn's format at the chosen ``--log-level``.

The server settings a WebSocket service needs (message size, keepalive,
compression, graceful shutdown, a connection cap, proxy headers, TLS) pass
through to uvicorn unchanged; an option you leave out keeps uvicorn's default.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import ssl
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

from lilya import __version__
from lilya._gc import GC_THRESHOLD
from lilya._importer import AppImportError, add_app_dir, import_app
from lilya.limits import largest_message_size

__all__ = ["DEFAULT_WS", "FASTEST_FANOUT_WS", "build_parser", "main", "resolve_ws", "served_url"]

#: uvicorn's WebSocket implementations, as ``--ws`` takes them.
WS_CHOICES: Final = ("auto", "websockets", "websockets-sansio", "wsproto")
#: The implementation ``lilya run`` uses unless told otherwise: the one of the
#: three that answers and closes over-long handshakes, logs no false ERROR per
#: refused handshake and prints no traceback for invalid UTF-8, while keeping
#: keepalive pings and ``--ws-max-size`` (uvicorn >= 0.46; docs/servers.md).
DEFAULT_WS: Final = "wsproto"
#: The implementation that spends the least server CPU per frame when one
#: publication goes to many sockets (``benchmarks/e2e.py``, its "setups"
#: section: ``relay()`` to 1,000 sockets at max rate, 12.1 µs per frame against
#: 17.2 on ``websockets`` and 21.1 on ``wsproto``; measured 2026-12-02 on a busy
#: shared machine). Said in ``--help`` so that whoever trades the defences of
#: the default for throughput knows what they get.
FASTEST_FANOUT_WS: Final = "websockets-sansio"
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


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def _whole_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value}")
    return value


_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false") from None


def _add_server_options(run: argparse.ArgumentParser) -> None:
    """The uvicorn settings a WebSocket service needs, passed through as uvicorn spells them."""
    group = run.add_argument_group(
        "server settings (passed to uvicorn; left out, uvicorn's default applies)"
    )
    group.add_argument(
        "--ws-max-size",
        type=_size,
        metavar="BYTES",
        help="largest incoming WebSocket message; a larger one closes with 1009 "
        "(default: the app's largest max_message_size, 1 MiB unless set; "
        "uvicorn's 16777216 for an app without one)",
    )
    group.add_argument(
        "--ws-ping-interval",
        type=_seconds,
        metavar="SECONDS",
        help="send a keepalive ping this often; 0 turns pings off (default 20)",
    )
    group.add_argument(
        "--ws-ping-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close with 1011 when a ping is not answered in this time (default 20)",
    )
    group.add_argument(
        "--ws-per-message-deflate",
        type=_boolean,
        metavar="BOOL",
        help="offer permessage-deflate compression: true or false (default true)",
    )
    group.add_argument(
        "--timeout-graceful-shutdown",
        type=_whole_seconds,
        metavar="SECONDS",
        help="on shutdown, wait this long for connections to end before cancelling them "
        "(default: wait for ever)",
    )
    group.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        metavar="N",
        help="answer 503 to new connections beyond N open ones (default: no limit)",
    )
    group.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trust X-Forwarded-Proto/-For from --forwarded-allow-ips (uvicorn's default: on)",
    )
    group.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated addresses (or *) whose proxy headers are trusted "
        "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    group.add_argument(
        "--ssl-keyfile", metavar="FILE", help="TLS private key (PEM): serve https:// and wss://"
    )
    group.add_argument(
        "--ssl-certfile", metavar="FILE", help="TLS certificate chain (PEM), with --ssl-keyfile"
    )
    group.add_argument(
        "--ssl-keyfile-password", metavar="PASSWORD", help="the password of an encrypted key"
    )


#: ``lilya run`` option -> ``uvicorn.run`` keyword, for the options passed through as they are.
_PASSED_THROUGH: Final = (
    "ws_max_size",
    "ws_ping_interval",
    "ws_ping_timeout",
    "ws_per_message_deflate",
    "timeout_graceful_shutdown",
    "limit_concurrency",
    "proxy_headers",
    "forwarded_allow_ips",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_keyfile_password",
)


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
        default=DEFAULT_WS,
        help=f"uvicorn's WebSocket implementation (default {DEFAULT_WS}: the one that holds "
        "against hostile clients, see docs/servers.md; auto is uvicorn's own choice). "
        f"Fastest for fan-out: {FASTEST_FANOUT_WS}, about 0.6x wsproto's server CPU per "
        "frame sent (docs/benchmarks.md), without wsproto's defences",
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
    run.add_argument(
        "--gc-tuning",
        action=argparse.BooleanOptionalAction,
        default=_env_boolean("LILYA_GC_TUNING", True),
        help="once started, freeze what start-up allocated (gc.freeze) and collect the young "
        f"generation every {GC_THRESHOLD:,} allocations instead of 700: less time scanning "
        "live sockets (default on; LILYA_GC_TUNING=0 turns it off; see docs/operations.md)",
    )
    _add_server_options(run)
    return parser


def _env_boolean(name: str, default: bool) -> bool:
    """The boolean in environment variable *name* (true/false, 1/0, yes/no), else *default*."""
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise SystemExit(f"lilya: {name}={text!r} is not true or false (1/0, yes/no).") from None


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


def served_url(host: str, port: int, scheme: str = "http") -> str:
    """Return the URL a person opens for a server bound to *host*:*port*.

    A wildcard address is not something a browser can open, so it becomes
    ``localhost``; an IPv6 literal gets its brackets. *scheme* is ``https``
    when the server speaks TLS.
    """
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _check_tls(args: argparse.Namespace) -> str | None:
    """Return why the TLS files cannot serve, or ``None`` when they can (or none are given)."""
    if args.ssl_keyfile is None and args.ssl_certfile is None:
        return None
    if args.ssl_certfile is None:
        return "--ssl-keyfile needs --ssl-certfile (the certificate that goes with the key)."
    # Without a password, an encrypted key would make OpenSSL prompt on the
    # terminal (and hang a server started by a script): give it an empty one.
    password = args.ssl_keyfile_password or ""
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile, password=password)
    except (OSError, ssl.SSLError) as exc:
        files = f"--ssl-certfile {args.ssl_certfile}"
        if args.ssl_keyfile is not None:
            files += f" and --ssl-keyfile {args.ssl_keyfile}"
        return (
            f"Cannot serve TLS with {files}: {exc}. Give a PEM certificate chain and its "
            "private key, and --ssl-keyfile-password if the key is encrypted "
            "(openssl req -x509 -newkey rsa:2048 -nodes makes a test pair)."
        )
    return None


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up (query tokens redacted), plus the ``lilya`` logger at *level*."""
    from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    # Tokens in query strings (``/ws?token=...``) are shown as ``token=***``: in
    # the access log (HTTP) and in uvicorn.error's "WebSocket /ws?..." lines.
    config.setdefault("filters", {})["lilya_redact_tokens"] = {"()": "lilya.tokens.RedactTokens"}
    for handler in ("default", "access"):
        config["handlers"][handler].setdefault("filters", []).append("lilya_redact_tokens")
    config["loggers"]["lilya"] = {
        "handlers": ["default"],
        "level": LOG_LEVELS[level],
        "propagate": False,
    }
    return config


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    add_app_dir(args.app_dir)
    try:
        app = import_app(args.app, factory=args.factory)
    except AppImportError as exc:
        print(f"lilya: {exc}", file=err)
        return 1

    problem = _check_tls(args)
    if problem is not None:
        print(f"lilya: {problem}", file=err)
        return 2

    from lilya import _uvicorn  # here, so that `lilya --help` and import errors stay fast

    ws = resolve_ws(args.ws)
    url = served_url(args.host, args.port, "https" if args.ssl_certfile else "http")
    processes = " with auto-reload" if args.reload else ""
    if args.workers > 1:
        processes = f" in {args.workers} worker processes"
    print(
        f"lilya: serving {args.app} at {url} (WebSockets at ws{url[4:]}) on uvicorn "
        f"with --ws {ws}{processes}. Press Ctrl+C to stop.",
        file=out,
        flush=True,
    )
    if ws == "websockets-sansio":
        print(
            "lilya: note: websockets-sansio never answers nor closes a handshake with a line "
            "over 8 KB, and logs a false ERROR for every refused handshake "
            f"(docs/servers.md); the default, --ws {DEFAULT_WS}, does neither.",
            file=err,
            flush=True,
        )
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "ws": ws,
        "log_level": args.log_level,
        "log_config": _log_config(args.log_level),
    }
    # The server buffers a whole message before the app sees it: let it buffer
    # no more than the app's largest route takes (lilya.limits).
    largest = largest_message_size(app)
    if largest is not None:
        options["ws_max_size"] = largest
    for name in _PASSED_THROUGH:
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.reload or args.workers > 1:
        # uvicorn re-imports the app in each child process, so it needs the path;
        # loading it above has already proved that the path loads.
        options.update(
            reload=args.reload,
            workers=args.workers,
            factory=args.factory,
            reload_dirs=[os.path.abspath(args.app_dir)] if args.reload else None,
        )
        _uvicorn.run(args.app, gc_tuning=args.gc_tuning, **options)
    else:
        _uvicorn.run(app, gc_tuning=args.gc_tuning, **options)
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
