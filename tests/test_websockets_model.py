"""A property test: thousands of random message sequences against a model of the table.

The model is written from ``TRANSITIONS`` alone; the WebSocket must agree with
it on every step — the state it ends in, what reached the server, and which
error it raised — and must never raise anything but its own errors.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lilya.exceptions import WebSocketRuntimeError
from lilya.websockets import TRANSITIONS, WebSocketDisconnect, WebSocketState
from tests.support.asgi import websocket

S = WebSocketState
TYPES = sorted({row[2] for row in TRANSITIONS})
LEGAL = {(side, state, mtype, more): nxt for side, state, mtype, more, nxt in TRANSITIONS}


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (the Wire answers at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the WebSocket suspended on an in-memory wire")


def message(mtype: str, more_body: bool) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": mtype}
    if mtype in ("websocket.receive", "websocket.send"):
        msg["text"] = "x"
    if mtype == "websocket.http.response.start":
        msg["status"] = 403
    if mtype == "websocket.http.response.body":
        msg["more_body"] = more_body
    if mtype == "websocket.disconnect":
        msg["code"] = 4000
    return msg


def lookup(side: str, state: WebSocketState, mtype: str, more: bool) -> WebSocketState | None:
    key_more = more if mtype == "websocket.http.response.body" else None
    return LEGAL.get((side, state, mtype, key_more))


actions = st.lists(
    st.tuples(
        st.sampled_from(["receive", "send", "receive_text", "send_text", "close"]),
        st.sampled_from(TYPES),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=4000, deadline=None)
@given(actions)
def test_random_sequences_agree_with_the_transition_table(
    steps: list[tuple[str, str, bool]],
) -> None:
    ws, wire = websocket()
    client, app = S.CONNECTING, S.CONNECTING
    for op, mtype, more in steps:
        sent_before, calls_before = len(wire.sent), wire.receive_calls
        if op in ("receive", "receive_text"):
            if op == "receive_text" and app is not S.CONNECTED:
                try:
                    run(ws.receive_text())
                except WebSocketRuntimeError:
                    assert wire.receive_calls == calls_before
                    continue
                raise AssertionError("receive_text outside CONNECTED must raise")
            if op == "receive_text":
                # A data-or-disconnect message, as a real server would send.
                mtype = "websocket.receive" if more else "websocket.disconnect"
            if client is S.DISCONNECTED:
                try:
                    run(getattr(ws, op)())
                except WebSocketRuntimeError:
                    assert wire.receive_calls == calls_before  # never asks the server
                    continue
                raise AssertionError("receive after a disconnect must raise")
            wire.incoming.append(message(mtype, more))
            expected = lookup("receive", client, mtype, more)
            try:
                result = run(getattr(ws, op)())
            except WebSocketRuntimeError:
                assert expected is None
                assert mtype != "websocket.connect" or client is not S.CONNECTING
            except WebSocketDisconnect as exc:
                assert op == "receive_text"
                assert mtype == "websocket.disconnect"
                assert exc.code == 4000  # noqa: PT017 - a model step, not a test of raising
                client = S.DISCONNECTED
            else:
                assert expected is not None
                client = expected
                if op == "receive_text":
                    assert result == "x"
            wire.incoming.clear()
        else:
            if op == "send_text":
                mtype = "websocket.send"
            if op == "close":
                mtype = "websocket.close"
            msg = message(mtype, more)
            expected = lookup("send", app, mtype, more)
            try:
                if op == "send_text":
                    run(ws.send_text("x"))
                elif op == "close":
                    run(ws.close(4000))
                else:
                    run(ws.send(msg))
            except WebSocketRuntimeError:
                assert expected is None
                assert len(wire.sent) == sent_before
            except WebSocketDisconnect:
                assert expected is not None
                assert client is S.DISCONNECTED
                assert mtype != "websocket.close"
                assert len(wire.sent) == sent_before  # the server is never called
            else:
                assert expected is not None
                if client is S.DISCONNECTED:
                    assert mtype == "websocket.close"
                    assert len(wire.sent) == sent_before
                    app = S.DISCONNECTED
                else:
                    assert len(wire.sent) == sent_before + 1
                    app = expected
        assert (ws.client_state, ws.application_state) == (client, app)
