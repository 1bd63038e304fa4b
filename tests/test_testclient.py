"""lilya/testclient.py: the two clients, their settings, and how a WebSocket session starts."""

from __future__ import annotations

import asyncio

import pytest

from lilya.testclient import (
    AsyncTestClient,
    TestClient,
    WebSocketTestSession,
)
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket
from tests.support.testclient import (
    ClientFactory,
    echo,
    lifespan_app,
    scope_recorder,
    send_text_response,
)


def test_base_url_and_client_address_are_configurable() -> None:
    seen: list[Scope] = []
    client = TestClient(
        scope_recorder(seen), base_url="https://example.org:8443", client=("10.0.0.1", 1234)
    )
    client.get("/x")
    assert seen[0]["scheme"] == "https"
    assert seen[0]["server"] == ["example.org", 8443]
    assert seen[0]["client"] == ("10.0.0.1", 1234)


def test_redirects_are_followed_by_default_and_can_be_turned_off() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/old":
            headers = [(b"location", b"/new"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send_text_response(send, scope["path"].encode())

    assert TestClient(app).get("/old").text == "/new"
    assert TestClient(app, follow_redirects=False).get("/old").status_code == 307


def test_client_headers_and_cookies_are_sent_with_every_request() -> None:
    seen: list[Scope] = []
    client = TestClient(
        scope_recorder(seen), headers={"user-agent": "mine", "x-a": "1"}, cookies={"c": "v"}
    )
    client.get("/")
    headers = dict(seen[0]["headers"])
    assert headers[b"user-agent"] == b"mine"
    assert headers[b"x-a"] == b"1"
    assert headers[b"cookie"] == b"c=v"


def test_inside_the_context_every_request_runs_on_one_event_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []  # kept alive, so identities are not reused

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # no lifespan support: the client carries on
        loops.append(asyncio.get_running_loop())
        await send_text_response(send, b"")

    with TestClient(app) as client:
        client.get("/")
        client.get("/")
    client.get("/")
    assert loops[0] is loops[1]
    assert loops[1] is not loops[2]


def test_an_absolute_websocket_url_sets_scheme_server_and_host() -> None:
    seen: list[Scope] = []
    client = TestClient(scope_recorder(seen))
    with client.websocket_connect("wss://example.com:8443/x"):
        pass
    with client.websocket_connect("wss://example.com/x"):
        pass
    assert seen[0]["scheme"] == "wss"
    assert seen[0]["server"] == ["example.com", 8443]
    assert dict(seen[0]["headers"])[b"host"] == b"example.com:8443"
    assert seen[1]["server"] == ["example.com", 443]


def test_websocket_params_and_cookies_go_into_the_request() -> None:
    seen: list[Scope] = []
    client = TestClient(scope_recorder(seen), cookies={"session": "s"})
    with client.websocket_connect("/ws", params={"a": "1"}):
        pass
    assert seen[0]["query_string"] == b"a=1"
    assert dict(seen[0]["headers"])[b"cookie"] == b"session=s"


def test_offered_subprotocols_reach_the_scope_and_the_chosen_one_comes_back(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        assert websocket.headers["sec-websocket-protocol"] == "soap, wamp"
        await websocket.accept(subprotocol=scope["subprotocols"][1], headers={"x-extra": "1"})
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/", subprotocols=["soap", "wamp"]) as session:
        assert session.accepted_subprotocol == "wamp"
        assert session.extra_headers == [(b"x-extra", b"1")]


def test_an_exception_in_the_test_body_propagates_and_stops_the_app() -> None:
    with pytest.raises(KeyError, match="from the test"), TestClient(echo).websocket_connect("/"):
        raise KeyError("from the test")


def test_sessions_share_the_client_loop_inside_its_context() -> None:
    events: list[str] = []
    lifespan = lifespan_app(events)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await echo(scope, receive, send)
        else:
            await lifespan(scope, receive, send)

    with (
        TestClient(app, backend="trio") as client,
        client.websocket_connect("/a") as first,
        client.websocket_connect("/b") as second,
    ):
        first.send_text("1")
        second.send_text("2")
        assert (first.receive_text(), second.receive_text()) == ("1", "2")
    assert events == ["startup", "shutdown"]


def test_a_session_is_a_websocket_test_session() -> None:
    session = TestClient(echo).websocket_connect("/")
    assert isinstance(session, WebSocketTestSession)
    assert session.scope["type"] == "websocket"
    assert session.app is echo


@pytest.mark.parametrize("client_class", [TestClient, AsyncTestClient])
def test_the_clients_settings_are_one_object_its_transport_and_sessions_read(
    client_class: type[TestClient] | type[AsyncTestClient],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    client = client_class(app, root_path="/r", websocket_timeout=5.0)
    assert client.app is app
    assert (client.root_path, client.raise_server_exceptions, client.websocket_timeout) == (
        "/r",
        True,
        5.0,
    )
    client.root_path = "/other"
    client.raise_server_exceptions = False
    client.websocket_timeout = None
    settings = client._settings
    assert (settings.root_path, settings.raise_server_exceptions, settings.websocket_timeout) == (
        "/other",
        False,
        None,
    )
    assert client._transport._settings is settings  # type: ignore[union-attr]  # private
