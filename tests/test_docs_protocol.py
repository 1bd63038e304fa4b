"""docs/protocol.md: its examples run, and its frames, codes and settings are the code's."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any, Literal, get_args

import msgspec
import pytest

from lilya.protocol import ChannelOptions, ChannelsEndpoint, ErrorCode, Push, Request
from lilya.testclient import TestClient, WebSocketDenialResponse
from tests.support.docs import DOCS, python_blocks

PAGE = (DOCS / "protocol.md").read_text()


def run(block: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(python_blocks("protocol.md")[block], "docs/protocol.md", "exec"), namespace)
    return namespace


def section(name: str) -> str:
    return PAGE.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]


def json_lines(name: str) -> list[Any]:
    body = section(name).split("```json\n")[1].split("```")[0]
    return [json.loads(line) for line in body.splitlines() if line.strip()]


class Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        self.ws.send_json({"type": kind, "id": self.n, **fields})
        while True:
            frame: dict[str, Any] = self.ws.receive_json()
            if "type" not in frame:
                return frame


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_pages_endpoint_authenticates_authorizes_and_answers_rpc(
    backend: Literal["asyncio", "trio"],
) -> None:
    app = run(0)["app"]
    with TestClient(app, backend=backend) as client:
        with client.websocket_connect("/ws", subprotocols=["bearer", "token-bob"]) as ws:
            assert ws.accepted_subprotocol == "bearer"
            bob = Session(ws)
            assert (
                bob.call("subscribe", channel="room:lobby", presence=True)["ok"]["recovered"]
                is False
            )
            assert bob.call("rpc", method="whoami")["ok"] == {
                "data": {"user": "bob", "channels": ["room:lobby"]}
            }
            assert bob.call("publish", channel="news", data=1)["error"]["code"] == "forbidden"
            assert bob.call("subscribe", channel="admin:x")["error"]["code"] == "forbidden"
            assert "ok" in bob.call("publish", channel="room:lobby", data={"text": "hi"})
        with client.websocket_connect("/ws") as ws:
            ann = Session(ws)
            assert ann.call("ping")["error"]["code"] == "unauthorized"
            ok = ann.call("connect", token="token-ann-short")["ok"]
            assert (ok["user"], ok["expires_at"]) == ("ann", 4102444800.0)
            assert ann.call("history", channel="admin:x")["error"]["code"] == "forbidden"
            assert [
                m["data"] for m in ann.call("history", channel="room:lobby")["ok"]["messages"]
            ] == [{"text": "hi"}]
        with (
            pytest.raises(WebSocketDenialResponse) as caught,
            client.websocket_connect("/ws?token=nope"),
        ):
            pass
        assert caught.value.status_code == 401


def test_the_pages_plain_route_takes_the_token_from_the_handshake() -> None:
    plain = run(1)["plain"]
    with TestClient(plain) as client:
        with client.websocket_connect("/hello", subprotocols=["bearer", "token-ann"]) as ws:
            assert ws.accepted_subprotocol == "bearer"
            assert ws.receive_text() == "hello ann"
        with pytest.raises(WebSocketDenialResponse) as caught, client.websocket_connect("/hello"):
            pass
        assert caught.value.status_code == 401


def test_every_request_example_is_a_request_the_server_decodes() -> None:
    examples = json_lines("requests")
    decoded = [msgspec.convert(example, Request) for example in examples]
    kinds = {type(frame) for frame in decoded}
    assert kinds == set(get_args(Request))


def test_every_push_example_is_a_push_the_server_sends() -> None:
    examples = json_lines("pushes")
    decoded = [msgspec.convert(example, Push) for example in examples]
    assert {type(frame) for frame in decoded} == set(get_args(Push))


def test_the_error_table_lists_every_error_code_once() -> None:
    listed = re.findall(r"^\| `(\w+)` \|", section("errors"), re.M)
    assert listed == list(get_args(ErrorCode))


def _table(name: str) -> dict[str, str]:
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|", section(name), re.M)
    return dict(rows)


def test_the_endpoint_settings_table_gives_every_setting_and_its_default() -> None:
    table = _table("endpoint-settings")
    parameters = inspect.signature(ChannelsEndpoint).parameters
    names = [name for name in parameters if name != "hub"]
    assert list(table) == names
    for name in names:
        default = parameters[name].default
        shown = table[name]
        if name == "tokens":
            assert shown == "`TokenSources()`"
        elif name == "identify":
            assert shown == "`str`"
        else:
            assert shown == f"`{default!r}`", name


def test_the_channel_settings_table_gives_every_option_and_its_default() -> None:
    table = _table("channel-settings")
    fields = dataclasses.fields(ChannelOptions)
    assert list(table) == [field.name for field in fields]
    for field in fields:
        assert table[field.name] == f"`{field.default!r}`".replace("'", '"'), field.name
