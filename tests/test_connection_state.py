"""The connection state, driven directly: no server, no event loop, no I/O.

Every cell of the table (side x state x message type) is checked, legal and
illegal, through the strict entry points; the lenient observer never refuses;
and a property test runs over ten thousand random sequences against a model
written from ``TRANSITIONS`` alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lilya import status
from lilya._connection_state import (
    HTTP_TRANSITIONS,
    TRANSITIONS,
    ConnectionState,
    WebSocketState,
    state_of,
)
from lilya.exceptions import WebSocketRuntimeError

S = WebSocketState
LEGAL = {(side, state, mtype, more): nxt for side, state, mtype, more, nxt in TRANSITIONS}
OBSERVED = {
    (side, state, mtype, more): nxt
    for side, state, mtype, more, nxt in TRANSITIONS + HTTP_TRANSITIONS
}
TYPES = sorted(
    {row[2] for row in TRANSITIONS + HTTP_TRANSITIONS}
    | {"http.disconnect", "http.request", "websocket.bogus"}
)
BODIES = ("websocket.http.response.body", "http.response.body")


def message(mtype: str, more_body: bool = False) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": mtype}
    if mtype in BODIES:
        msg["more_body"] = more_body
    if mtype in ("websocket.disconnect", "http.disconnect"):
        msg["code"] = 4000
        msg["reason"] = "bye"
    return msg


def lookup(
    table: dict[tuple[str, S, str, bool | None], S], side: str, state: S, mtype: str, more: bool
) -> S | None:
    return table.get((side, state, mtype, more if mtype in BODIES else None))


def in_state(client: S, application: S) -> ConnectionState:
    state = ConnectionState()
    state.client, state.application = client, application
    return state


# -- every cell, strictly -------------------------------------------------------------

CELLS = [
    (side, state, mtype, more)
    for side in ("receive", "send")
    for state in S
    for mtype in TYPES
    for more in ((False, True) if mtype in BODIES else (False,))
]


@pytest.mark.parametrize(("side", "state", "mtype", "more"), CELLS)
def test_every_cell_of_the_table_moves_or_refuses_with_the_spec_message(
    side: str, state: S, mtype: str, more: bool
) -> None:
    expected = lookup(LEGAL, side, state, mtype, more)
    connection = in_state(state, S.CONNECTED) if side == "receive" else in_state(S.CONNECTED, state)
    if expected is None:
        with pytest.raises(WebSocketRuntimeError) as info:
            if side == "receive":
                connection.take_receive(message(mtype, more), state)
            else:
                connection.take_send(message(mtype, more))
        if side == "send" and state is S.DISCONNECTED:
            assert str(info.value) == 'Cannot call "send" once a close message has been sent.'
        else:
            assert str(info.value).startswith("Expected ")
            assert str(info.value).endswith(f"but got {mtype!r}.")
        assert info.value.state == state.name
        assert (connection.client, connection.application) == (
            (state, S.CONNECTED) if side == "receive" else (S.CONNECTED, state)
        )
        return
    if side == "receive":
        connection.take_receive(message(mtype, more), state)
        assert connection.client is expected
    else:
        assert connection.take_send(message(mtype, more)) is state
        assert connection.application is expected


def test_the_refusal_names_what_was_expected_in_the_spec_form() -> None:
    with pytest.raises(WebSocketRuntimeError) as info:
        in_state(S.CONNECTED, S.CONNECTED).take_send({"type": "websocket.accept"})
    assert str(info.value) == (
        'Expected ASGI message "websocket.send" or "websocket.close", but got \'websocket.accept\'.'
    )
    assert (info.value.state, info.value.message_type) == ("CONNECTED", "websocket.accept")


def test_a_receive_after_a_disconnect_is_refused_before_it_starts() -> None:
    state = in_state(S.DISCONNECTED, S.CONNECTED)
    with pytest.raises(WebSocketRuntimeError) as info:
        state.check_receive()
    assert str(info.value) == 'Cannot call "receive" once a disconnect message has been received.'


@pytest.mark.parametrize(("side", "state", "mtype", "more"), CELLS)
def test_the_observer_never_refuses_and_moves_only_where_a_table_has_a_row(
    side: str, state: S, mtype: str, more: bool
) -> None:
    connection = in_state(state, state)
    if side == "receive":
        connection.observe_receive(message(mtype, more))
        if mtype in ("websocket.disconnect", "http.disconnect"):
            assert (connection.client, connection.code, connection.reason) == (
                S.DISCONNECTED,
                4000,
                "bye",
            )
        else:
            assert connection.client is (lookup(OBSERVED, side, state, mtype, more) or state)
    else:
        connection.observe_send(message(mtype, more))
        assert connection.application is (lookup(OBSERVED, side, state, mtype, more) or state)


# -- what follows from the two sides --------------------------------------------------


def test_a_new_state_is_connecting_on_both_sides_with_no_close_code_yet() -> None:
    state = ConnectionState()
    assert (state.client, state.application) == (S.CONNECTING, S.CONNECTING)
    assert (state.open, state.accepted, state.started, state.ended) == (False, False, False, False)
    assert state.code == status.WS_1005_NO_STATUS_RCVD
    assert repr(state) == "ConnectionState(client=CONNECTING, application=CONNECTING, code=1005)"


def test_accepted_stays_true_after_the_close_and_a_refused_accept_undoes_it() -> None:
    state = in_state(S.CONNECTED, S.CONNECTING)
    before = state.take_send({"type": "websocket.accept"})
    assert state.accepted
    assert state.open
    state.application = before  # the server refused it: it never left
    assert not getattr(state, "accepted")  # noqa: B009 - mypy narrowed the attribute above
    state.take_send({"type": "websocket.accept"})
    state.take_send({"type": "websocket.close"})
    assert (state.accepted, state.finished, state.open) == (True, True, False)


@pytest.mark.parametrize(
    ("client", "application", "closing"),
    [
        (S.CONNECTING, S.CONNECTING, "websocket.close"),
        (S.CONNECTED, S.CONNECTING, "websocket.close"),
        (S.CONNECTED, S.CONNECTED, "websocket.close"),
        (S.CONNECTED, S.RESPONSE, "websocket.http.response.body"),
        (S.CONNECTED, S.DISCONNECTED, None),
        (S.DISCONNECTED, S.CONNECTED, None),
        (S.DISCONNECTED, S.CONNECTING, None),
    ],
)
def test_the_one_rule_for_what_may_still_end_the_connection(
    client: S, application: S, closing: str | None
) -> None:
    state = in_state(client, application)
    message = state.closing_message(status.WS_1011_INTERNAL_ERROR)
    assert (message or {}).get("type") == closing
    if message is not None:
        state.take_send(message)  # always a legal move
        assert state.finished
    if closing == "websocket.close":
        assert message == {"type": "websocket.close", "code": 1011, "reason": ""}


def test_a_send_that_finds_a_client_known_to_be_gone_keeps_what_is_known() -> None:
    # The heartbeat knew first (its pong never came: 1011), or the client's
    # disconnect was received: a send that then fails says nothing new.
    state = in_state(S.CONNECTED, S.CONNECTED)
    state.lose()
    state.code, state.reason = 1011, "heartbeat: no pong within 10 s"
    state.lose()
    assert (state.code, state.reason, state.lost_on_send) == (
        1011,
        "heartbeat: no pong within 10 s",
        True,
    )
    state = in_state(S.CONNECTED, S.CONNECTED)
    state.observe_receive({"type": "websocket.disconnect", "code": 4000, "reason": "bye"})
    state.lose()
    assert (state.code, state.reason, state.lost_on_send) == (4000, "bye", False)


def test_a_send_that_finds_the_client_gone_is_1006_until_the_server_says_more() -> None:
    state = in_state(S.CONNECTED, S.CONNECTED)
    before = state.check_receive()  # a receive is already waiting
    state.lose()
    assert (state.client_gone, state.lost_on_send, state.code) == (True, True, 1006)
    # What the client sent before it left is still data (relay() drains it)...
    state.take_receive({"type": "websocket.receive", "text": "late"}, before)
    assert (state.client_gone, state.lost_on_send, state.code) == (True, True, 1006)
    assert state.check_receive() is S.DISCONNECTED  # ...and more may be asked for
    with pytest.raises(WebSocketRuntimeError, match="no ASGI message in DISCONNECTED"):
        state.take_receive({"type": "websocket.accept"}, before)
    state.take_receive({"type": "websocket.disconnect", "code": 1001}, before)
    assert (state.code, state.reason, state.lost_on_send) == (1001, "", False)
    with pytest.raises(WebSocketRuntimeError, match="once a disconnect message"):
        state.check_receive()  # the server said it all: never ask it again


def test_the_scope_keeps_one_state_per_connection() -> None:
    scope: dict[str, Any] = {"type": "websocket"}
    state = state_of(scope)
    assert state_of(scope) is state
    assert state_of(dict(scope)) is state  # a shallow copy shares it


# -- ten thousand random sequences against the model ------------------------------------

steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["take_receive", "take_send", "observe_receive", "observe_send", "lose", "waiting"]
        ),
        st.sampled_from(TYPES),
        st.booleans(),
    ),
    max_size=14,
)


@settings(max_examples=10_000, deadline=None)
@given(steps)
def test_random_sequences_agree_with_a_model_of_the_table(
    sequence: list[tuple[str, str, bool]],
) -> None:
    state = ConnectionState()
    client, app, accepted, lost, code = S.CONNECTING, S.CONNECTING, False, False, 1005
    for op, mtype, more in sequence:
        msg = message(mtype, more)
        if op in ("take_receive", "waiting"):
            if client is S.DISCONNECTED and not lost:
                with pytest.raises(WebSocketRuntimeError):
                    state.check_receive()
                continue
            before = state.check_receive()
            if op == "waiting":  # a send finds the client gone while this receive waits
                state.lose()
                if client is not S.DISCONNECTED:  # a leaving already known stays as it is
                    client, lost, code = S.DISCONNECTED, True, 1006
            if lost:
                # After a lost send the server still hands over what the client
                # sent before leaving (data: nothing moves), then its disconnect.
                data_or_leave = ("websocket.receive", "websocket.disconnect")
                expected = S.DISCONNECTED if mtype in data_or_leave else None
            else:
                expected = lookup(LEGAL, "receive", client, mtype, more)
            if expected is None:
                with pytest.raises(WebSocketRuntimeError):
                    state.take_receive(msg, before)
            else:
                state.take_receive(msg, before)
                client = expected
                if mtype == "websocket.disconnect":
                    lost, code = False, 4000
        elif op == "take_send":
            expected = lookup(LEGAL, "send", app, mtype, more)
            if expected is None:
                with pytest.raises(WebSocketRuntimeError):
                    state.take_send(msg)
            else:
                assert state.take_send(msg) is app
                app = expected
        elif op == "observe_receive":
            state.observe_receive(msg)
            if mtype in ("websocket.disconnect", "http.disconnect"):
                client, lost, code = S.DISCONNECTED, False, 4000
            else:
                client = lookup(OBSERVED, "receive", client, mtype, more) or client
        elif op == "observe_send":
            state.observe_send(msg)
            app = lookup(OBSERVED, "send", app, mtype, more) or app
        else:
            state.lose()
            if client is not S.DISCONNECTED:
                client, lost, code = S.DISCONNECTED, True, 1006
        if app is S.CONNECTED:
            accepted = True
        elif app is S.CONNECTING:
            accepted = False
        assert (state.client, state.application) == (client, app)
        assert (state.accepted, state.lost_on_send, state.code) == (accepted, lost, code)
        assert state.open == (client is S.CONNECTED and app is S.CONNECTED)
        assert state.started == (app is not S.CONNECTING)
        assert state.ended == (S.DISCONNECTED in (client, app))
        closing = state.closing_message(1000)
        assert (closing is None) == state.ended
