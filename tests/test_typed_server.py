"""Typed messages over a real server: uvicorn and the ``websockets`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.servers import RunningServer, serve, tracebacks

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[RunningServer]:
    with serve("tests.support.typed_apps:app", "uvicorn") as server:
        yield server


def test_invalid_input_over_uvicorn_gets_an_error_frame_and_the_socket_stays_open(
    uvicorn: RunningServer,
) -> None:
    with uvicorn.connect("/chat/lobby") as ws:
        for frame in ('{"type": "say", "text": 5}', "{" * 100_000, b"\xff\xfe", "[]"):
            ws.send(frame)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "invalid_message"
        ws.send('{"type": "say", "text": "ok"}')
        assert json.loads(ws.recv(timeout=10)) == {"type": "said", "text": "ok"}
    assert tracebacks(uvicorn.log()) == []


def test_on_invalid_close_over_uvicorn_closes_1007_with_a_short_reason(
    uvicorn: RunningServer,
) -> None:
    with uvicorn.connect("/strict") as ws:
        ws.send(json.dumps({"type": "say", "text": ["x" * 10_000]}))
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(timeout=10)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1007
    assert caught.value.rcvd.reason == "invalid message at $.text: Expected `str`, got `array`"
    assert tracebacks(uvicorn.log()) == []


def test_a_bad_send_over_uvicorn_closes_1011_and_puts_no_frame_on_the_wire(
    uvicorn: RunningServer,
) -> None:
    with uvicorn.connect("/chat/lobby") as ws:
        ws.send('{"type": "say", "text": "bad-send"}')
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(timeout=10)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    log = uvicorn.wait_for_log("MessageTypeError")
    assert "sends=Said | Joined" in log


@pytest.mark.parametrize(
    ("text", "problem"),
    [("bad-send", "field_name='text'"), ("partial-send", "field(s) text missing")],
)
def test_a_bad_pydantic_send_over_uvicorn_closes_1011_after_the_good_frames(
    uvicorn: RunningServer, text: str, problem: str
) -> None:
    # Outside pytest nothing goes before lilya's warnings filter, so a served
    # app normally takes the serializer path without warnings="error".
    with uvicorn.connect("/pydantic") as ws:
        ws.send('{"type": "say", "text": "ok"}')
        assert ws.recv(timeout=10) == '{"type":"said","text":"ok"}'
        ws.send(json.dumps({"type": "say", "text": text}))
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(timeout=10)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    log = uvicorn.wait_for_log(problem)
    assert "MessageTypeError: send_message() got PSaid" in log
