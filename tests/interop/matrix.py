"""Render the interop suite's expectation table as the Markdown in ``docs/servers.md``.

``python -m tests.interop.matrix`` prints it; a test checks that the docs hold
exactly this text, so the published matrix is the one the suite enforces.
"""

from __future__ import annotations

from tests.interop.test_servers import EXPECTED, Expect, MiB
from tests.interop.test_sigterm import EXPECTED as SIGTERM
from tests.interop.test_sigterm import Outcome
from tests.support.servers import SERVERS

#: What the values of each row are (the column the docs show first).
MEANING = {
    "seed hello example": "client gets (frame, close code)",
    "seed iter_json example": "client gets the echoes",
    "accept with subprotocol and headers": "client gets (subprotocol, `x-lilya` header)",
    "frame: text": "echo the client gets",
    "frame: bytes": "echo the client gets",
    "frame: empty text": "echo the client gets",
    "frame: empty bytes": "echo the client gets",
    "frame: JSON text": "echo the client gets",
    "frame: JSON binary": "echo the client gets",
    "close code and reason": "client gets (code, reason) of `close(4001, 'bye')`",
    "close with a standard code after accept": "client gets `close(1008, 'policy')`",
    "close before accept": "HTTP status the client gets",
    "no route matches": "HTTP status the client gets",
    "denial response": "client gets (status, `x-why`, body) of a 401 `PlainText`",
    "client closes normally": "handler's `WebSocketDisconnect`",
    "client closes with code and reason": "handler's `WebSocketDisconnect` after "
    "`close(4000, 'client-bye')`",
    "client vanishes, app only sends": "what a handler that only sends learns (TCP RST)",
    "heartbeat: a client that never pongs": "client's (close code, within interval + "
    "timeout + 1 s) on a route with `heartbeat=(1, 1)` / what its send-only handler learns",
    "idle: a client that sends nothing, route's idle_timeout": "client's (close code, reason "
    "names the setting, within idle_timeout + 1 s) with `idle_timeout=1` / what its handler, "
    "blocked in receive, learns",
    "client vanishes, app also reads": "what a handler with a reader task learns (TCP RST)",
    "handler returns without closing": "client gets (frame, close code)",
    "handler raises after accept": "client gets (frame, close code)",
    "handler raises before accept": "HTTP status the client gets",
    "message at the size limit": "largest message that arrives whole",
    "message over the size limit": "client's close code / handler's `WebSocketDisconnect`",
    "message over a route's max_message_size": "reply to 64 KiB, then the client's close "
    "(code, reason) for 64 KiB + 1 / handler's `WebSocketDisconnect`",
    "message over the route's rate_limit": "echoes of a burst of 3, then the client's close "
    "(code, reason) for a 4th / handler's `WebSocketDisconnect`",
    "message over the route's rate_limit, on_exceed='drop'": "replies to 5 messages "
    "(burst of 3) / handler's `WebSocketDisconnect` after the client's close",
    "handshake over the route's per_process cap": "client gets (HTTP status, `Retry-After`) "
    "while it holds another socket (`ConnectionCaps(per_process=1)`)",
    "handshake over the route's per_address cap": "client gets (HTTP status, `Retry-After`) "
    "while it holds another socket (`ConnectionCaps(per_address=1)`)",
    "client stops reading, route's send_timeout": "the stalled client's TCP connection / "
    "handler's `WebSocketDisconnect` (send_timeout 0.5 s, 64 KiB messages)",
    "handshake not answered within handshake_timeout": "HTTP status the client gets / "
    "what the handler learns (handshake_timeout 1 s)",
}

SHORT = {
    "uvicorn-websockets": "uvicorn `--ws websockets`",
    "uvicorn-websockets-sansio": "uvicorn `--ws websockets-sansio`",
    "uvicorn-wsproto": "uvicorn `--ws wsproto`",
    "hypercorn": "hypercorn",
    "granian": "granian",
    "daphne": "daphne",
}


def show(value: object) -> str:
    """A compact, Markdown-safe rendering of one expected value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        if value >= MiB and value % MiB == 0:
            return f"{value // MiB} MiB"
        return "no close frame (1006)" if value == 1006 else str(value)
    if isinstance(value, bytes):
        return f"`{_cut(repr(value))}`" if value else '`b""`'
    if isinstance(value, str):
        if value.startswith("send raised WebSocketDisconnect("):
            return f"next send raises {value[-5:-1]}"
        if value.startswith("sends still succeed"):
            return "never told: sends succeed"
        if value.startswith("disconnect code="):
            return (
                value.replace("disconnect code=", "")
                .replace(" reason=''", "")
                .replace("reason=", "")
            )
        return f"`{_cut(repr(value))}`" if value != "dropped" else "**dropped**"
    if isinstance(value, (tuple, list)):
        return " / ".join(show(item) for item in value)
    return str(value)


def _cut(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 2] + "…" + text[-1]


def cell(expect: Expect, marks: dict[str, int]) -> str:
    parts = [show(expect.client)] if expect.client is not None else []
    if expect.app is not None:
        parts.append("app: " + show(expect.app))
    text = "; ".join(parts).replace("|", "\\|")
    for remark in (expect.bug, expect.note):
        if remark:
            marks.setdefault(remark, len(marks) + 1)
            text += f" [{marks[remark]}]"
    if expect.bug:
        text = f"**bug** {text}"
    return text


#: The SIGTERM row, enforced by ``tests/interop/test_sigterm.py``
#: (``lilya run`` is a row of its own there).
SIGTERM_ROW = "SIGTERM with 18 sockets open"
SIGTERM_MEANING = "close codes the clients get; exit status; every handler's `finally` ran"


def sigterm_cell(outcome: Outcome, marks: dict[str, int]) -> str:
    codes = ", ".join(show(code) for code in sorted(outcome.codes))
    ran = {True: "yes", False: "no", None: "some"}[outcome.all_finally_ran]
    text = f"{codes}; exit {outcome.status}; finally: {ran}"
    if outcome.traceback:
        text += "; a traceback logged"
    if outcome.note:
        marks.setdefault(outcome.note, len(marks) + 1)
        text += f" [{marks[outcome.note]}]"
    return text


def render_matrix() -> str:
    """Return the Markdown table (and its numbered notes) of :data:`EXPECTED`."""
    marks: dict[str, int] = {}
    header = "| scenario | what is shown | " + " | ".join(SHORT[s] for s in SERVERS) + " |"
    lines = [header, "|" + "---|" * (len(SERVERS) + 2)]
    for name, row in EXPECTED.items():
        cells = [cell(row[server], marks) for server in SERVERS]
        lines.append(f"| {name} | {MEANING[name]} | " + " | ".join(cells) + " |")
    cells = [sigterm_cell(SIGTERM[server], marks) for server in SERVERS]
    lines.append(f"| {SIGTERM_ROW} | {SIGTERM_MEANING} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"{number}. {remark}" for remark, number in marks.items())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_matrix(), end="")
