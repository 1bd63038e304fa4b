"""AsyncAPI 3.0 documents from apps (lilya.asyncapi), validated by the official schema."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import pytest

from examples.chat.app import create_app
from lilya.apps import Lilya
from lilya.asyncapi import (
    asyncapi_page,
    bearer_token,
    cookie_token,
    header_token,
    query_token,
)
from lilya.channels import Channels
from lilya.routing import Include, WebSocketPath
from lilya.testclient import TestClient
from lilya.typed import TypedChannel
from lilya.websockets import WebSocket
from tests.support.asyncapi_schema import validate_asyncapi
from tests.support.typed_apps import Join, PJoin, PSay, Said, Say, app


def test_the_chat_examples_document_validates_against_the_official_schema() -> None:
    document = create_app().asyncapi()
    validate_asyncapi(document)
    chat = document["channels"]["chat"]
    assert chat["address"] == "/ws/{room}"
    assert set(chat["messages"]) >= {"Say", "Welcome", "ChatMessage", "ChatError"}
    assert document["operations"]["chat.receive"]["messages"] == [
        {"$ref": "#/channels/chat/messages/Say"}
    ]


def test_the_typed_apps_document_lists_every_route_its_messages_and_validates() -> None:
    document = app.asyncapi()
    validate_asyncapi(document)
    assert document["info"] == {"title": "typed test app", "version": "2.0.0"}
    channels = document["channels"]
    assert channels["chat"]["address"] == "/chat/{room}"
    assert channels["chat"]["description"] == "A typed chat room."
    sends = document["operations"]["chat.send"]["messages"]
    assert {"$ref": "#/channels/chat/messages/InvalidMessage"} in sends
    # on_invalid="close": no invalid_message frame is ever sent there.
    strict = document["operations"]["strict.send"]["messages"]
    assert strict == [{"$ref": "#/channels/strict/messages/Said"}]
    # pydantic models and controllers are documented too.
    assert set(channels["pydantic_chat"]["messages"]) == {
        "PJoin",
        "PSay",
        "PSaid",
        "InvalidMessage",
    }
    assert channels["Room"]["description"] == "A typed controller."
    assert document["components"]["messages"]["Join"]["summary"] == 'type "join"'
    assert document["components"]["schemas"]["Say"]["properties"]["times"] == {
        "type": "integer",
        "default": 1,
    }


class _Frames(msgspec.Struct, tag="frame"):
    data: str


class _ProtocolEndpoint:
    """An endpoint instance serving a protocol of its own."""

    receives = _Frames
    sends = _Frames | Said

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await WebSocket(scope, receive, send).close()


async def _untyped(websocket: WebSocket) -> None:
    await websocket.close()


def test_any_handler_with_receives_and_sends_attributes_is_documented() -> None:
    application = Lilya(
        routes=[
            Include("/api", routes=[WebSocketPath("/proto/{id:int}", _ProtocolEndpoint())]),
            WebSocketPath("/plain", _untyped),
        ]
    )
    document = application.asyncapi()
    validate_asyncapi(document)
    proto = document["channels"]["ProtocolEndpoint"]  # an instance is named for its class
    assert proto["address"] == "/api/proto/{id}"
    assert proto["parameters"] == {"id": {"description": "the id part of the path"}}
    assert set(proto["messages"]) == {"Frames", "Said"}
    # An endpoint that validates nothing itself gets no invalid_message frame.
    assert "InvalidMessage" not in document["components"]["messages"]
    assert document["channels"]["untyped"] == {"address": "/plain", "messages": {}}


@pytest.mark.anyio
async def test_servers_security_and_typed_channels_are_documented() -> None:
    async with Channels("memory://") as channels:
        rooms: TypedChannel[Join | Say] = TypedChannel(channels, "room:{room}", Join | Say)
        document = app.asyncapi(
            servers={"production": {"host": "chat.example.com", "protocol": "wss"}},
            security={
                "query": query_token(description="?token="),
                "header": header_token(),
                "cookie": cookie_token(),
                "bearer": bearer_token(description="a JWT"),
            },
            channels=[rooms, TypedChannel(channels, "news", PJoin | PSay, description="News.")],
        )
    validate_asyncapi(document)
    assert document["servers"]["production"]["security"][0] == {
        "$ref": "#/components/securitySchemes/query"
    }
    assert document["components"]["securitySchemes"]["query"] == {
        "type": "httpApiKey",
        "in": "query",
        "name": "token",
        "description": "?token=",
    }
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    channel = document["channels"]["channel.room_room"]
    assert channel["address"] == "room:{room}"
    assert document["operations"]["channel.room_room.send"]["action"] == "send"
    assert document["channels"]["channel.news"]["description"] == "News."


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_document_and_its_page_are_served_with_the_requests_host(
    backend: Literal["asyncio", "trio"],
) -> None:
    with TestClient(app, backend=backend, base_url="https://api.example.com") as client:
        response = client.get("/asyncapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["servers"] == {"default": {"host": "api.example.com", "protocol": "wss"}}
        validate_asyncapi(document)
        page = client.get("/asyncapi")
        assert page.headers["content-type"].startswith("text/html")
        assert "typed test app" in page.text
        assert "http://" not in page.text.split("<script>")[1]  # nothing loaded from elsewhere


def test_served_servers_option_wins_over_the_request_host() -> None:
    application = Lilya()
    application.serve_asyncapi(servers={"x": {"host": "h:1", "protocol": "ws"}})
    with TestClient(application) as client:
        assert client.get("/asyncapi.json").json()["servers"] == {
            "x": {"host": "h:1", "protocol": "ws"}
        }


def test_the_page_escapes_a_closing_script_tag_in_the_document() -> None:
    page = asyncapi_page({"info": {"title": "</script><b>"}, "x": "</script>"})
    assert "</script><b>" not in page
    assert "&lt;/script&gt;&lt;b&gt;" in page


class Inner(msgspec.Struct, tag="a"):
    n: int


class Other(msgspec.Struct, tag="b"):
    m: int


class Outer(msgspec.Struct, tag="outer"):
    item: Inner | Other


def test_a_discriminator_object_becomes_the_property_name_asyncapi_expects() -> None:
    application = Lilya()
    application.add_websocket_route("/ws", _untyped, name="outer", receives=Outer)
    document = application.asyncapi()
    validate_asyncapi(document)
    item = document["components"]["schemas"]["Outer"]["properties"]["item"]
    assert item["discriminator"] == "type"


def _twin(tag: str) -> Any:
    class Twin(msgspec.Struct, tag=tag):
        n: int

    return Twin


def test_same_named_types_and_routes_get_distinct_keys() -> None:
    first, second = _twin("one"), _twin("two")
    application = Lilya()
    application.add_websocket_route("/a", _untyped, name="same", receives=first)
    application.add_websocket_route("/b", _untyped, name="same", receives=second)
    document = application.asyncapi(security={"jwt": bearer_token()})
    validate_asyncapi(document)
    assert set(document["channels"]) == {"same", "same_"}
    assert {"Twin", "Twin_"} <= set(document["components"]["messages"])
    assert document["components"]["securitySchemes"]["jwt"] == {"type": "http", "scheme": "bearer"}


def test_an_endpoint_mounted_as_an_app_is_documented_at_its_prefix() -> None:
    inner = Lilya(routes=[WebSocketPath("/typed", _untyped, receives=Join)])
    application = Lilya(
        routes=[
            Include("/protocol", app=_ProtocolEndpoint(), name="protocol"),
            Include("/inner", app=inner),
        ]
    )
    document = application.asyncapi()
    validate_asyncapi(document)
    assert document["channels"]["protocol"]["address"] == "/protocol"
    assert set(document["channels"]["protocol"]["messages"]) == {"Frames", "Said"}
    assert document["channels"]["untyped"]["address"] == "/inner/typed"


def test_token_sources_are_the_three_places_a_browser_can_put_a_token() -> None:
    from lilya.asyncapi import token_sources

    document = app.asyncapi(security=token_sources())
    validate_asyncapi(document)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerSubprotocol"]["name"] == "Sec-WebSocket-Protocol"
    assert (schemes["tokenCookie"]["in"], schemes["tokenCookie"]["name"]) == ("cookie", "token")
    assert (schemes["tokenQuery"]["in"], schemes["tokenQuery"]["name"]) == ("query", "token")
    only_query = token_sources(subprotocol=False, cookie=None, query="t")
    assert list(only_query) == ["tokenQuery"]
    assert only_query["tokenQuery"]["name"] == "t"
    assert list(token_sources(query=None)) == ["bearerSubprotocol", "tokenCookie"]


class _Said(msgspec.Struct):
    """What a typed room carries."""

    user: str
    text: str


def test_the_channels_protocol_endpoint_documents_its_frames_replies_and_typed_channels() -> None:
    from lilya.asyncapi import token_sources
    from lilya.protocol import ChannelOptions, ChannelsEndpoint

    hub = Channels("memory://")
    endpoint = ChannelsEndpoint(
        hub, channels={"room:*": ChannelOptions(payload=_Said), "news": ChannelOptions()}
    )
    application = Lilya(routes=[WebSocketPath("/ws", endpoint, name="protocol")])
    document = application.asyncapi(security=token_sources())
    validate_asyncapi(document)
    messages = document["channels"]["protocol"]["messages"]
    requests = {"Connect", "Subscribe", "Unsubscribe", "Publish", "Rpc", "PresenceRequest"}
    assert requests | {"HistoryRequest", "Refresh", "Ping", "Pong"} <= set(messages)
    pushes = {"MessagePush", "JoinPush", "LeavePush", "GapPush", "ResetPush", "DisconnectPush"}
    assert pushes | {"PingPush", "Reply"} <= set(messages)
    sent = document["operations"]["protocol.send"]["messages"]
    assert {"$ref": "#/channels/protocol/messages/Reply"} in sent
    assert document["components"]["messages"]["Subscribe"]["summary"] == 'type "subscribe"'
    typed = document["channels"]["channel.room_name"]
    assert typed["address"] == "room:{name}"
    assert list(typed["messages"]) == ["Said"]
