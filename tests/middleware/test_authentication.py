"""AuthenticationMiddleware: user and auth on the connection; refusals as real responses."""

from __future__ import annotations

from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.middleware import DefineMiddleware
from lilya.middleware.authentication import (
    AnonymousUser,
    AuthenticationError,
    AuthenticationMiddleware,
)
from lilya.requests import Request
from lilya.responses import JSONResponse, Response
from lilya.routing import Path, WebSocketPath
from lilya.testclient import TestClient, WebSocketDenialResponse
from lilya.websockets import WebSocket
from tests.support.asgi import call_http, call_websocket

pytestmark = pytest.mark.anyio


class TokenBackend:
    async def authenticate(self, connection: Any) -> tuple[Any, Any] | None:
        token = connection.headers.get("authorization") or connection.query_params.get("token")
        if token is None:
            return None
        if token == "banned":
            raise AuthenticationError("banned", status_code=403)
        if token != "secret":
            raise AuthenticationError("bad token", headers={"www-authenticate": "Bearer"})
        return ["authenticated"], "ann"


async def whoami(request: Request) -> str:
    return f"{request.user} {request.auth}"


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"{websocket.user!r} {websocket.auth}")


def make_app(**options: Any) -> Lilya:
    return Lilya(
        routes=[Path("/", whoami), WebSocketPath("/ws", ws)],
        middleware=[DefineMiddleware(AuthenticationMiddleware, backend=TokenBackend(), **options)],
    )


async def test_http_gets_user_and_auth_or_an_anonymous_user() -> None:
    app = make_app()
    outcome = await call_http(app, "/", headers=[("authorization", "secret")])
    assert outcome.body == b"ann ['authenticated']"
    assert (await call_http(app, "/")).body == b"AnonymousUser() None"


@pytest.mark.parametrize(("token", "status"), [("wrong", 401), ("banned", 403)])
async def test_http_refusal_has_the_errors_status(token: str, status: int) -> None:
    outcome = await call_http(make_app(), "/", headers=[("authorization", token)])
    assert outcome.status == status


@pytest.mark.parametrize(("token", "status"), [("wrong", 401), ("banned", 403)])
async def test_a_websocket_refusal_is_a_denial_response_not_a_close(
    token: str, status: int
) -> None:
    outcome = await call_websocket(make_app(), "/ws", query_string=f"token={token}".encode())
    assert outcome.status == status
    assert "websocket.accept" not in outcome.types
    assert "websocket.close" not in outcome.types
    if status == 401:
        assert outcome.headers["www-authenticate"] == "Bearer"


async def test_without_the_extension_a_refused_websocket_is_closed_before_accept() -> None:
    outcome = await call_websocket(make_app(), "/ws", query_string=b"token=x", extensions=False)
    assert outcome.types == ["websocket.close"]
    assert outcome.close == (1008, "")


def test_the_test_client_sees_401_and_the_user() -> None:
    client = TestClient(make_app())
    with pytest.raises(WebSocketDenialResponse) as denial, client.websocket_connect("/ws?token=x"):
        pass
    assert denial.value.status_code == 401
    assert denial.value.text == "bad token"
    with client.websocket_connect("/ws?token=secret") as session:
        assert session.receive_text() == "'ann' ['authenticated']"


async def test_on_error_builds_the_refusal_for_both_kinds() -> None:
    async def on_error(connection: Any, exc: AuthenticationError) -> Response:
        return JSONResponse({"error": exc.detail, "kind": type(connection).__name__}, 401)

    app = make_app(on_error=on_error)
    outcome = await call_http(app, "/", headers=[("authorization", "x")])
    assert outcome.body == b'{"error":"bad token","kind":"Request"}'
    outcome = await call_websocket(app, "/ws", query_string=b"token=x")
    assert outcome.body == b'{"error":"bad token","kind":"WebSocket"}'


async def test_a_plain_function_backend_works() -> None:
    async def backend(connection: Any) -> tuple[Any, Any]:
        return "scopes", "bob"

    app = Lilya(
        routes=[Path("/", whoami)],
        middleware=[DefineMiddleware(AuthenticationMiddleware, backend)],
    )
    assert (await call_http(app, "/")).body == b"bob scopes"


async def test_user_without_the_middleware_is_a_clear_error() -> None:
    outcome = await call_http(Lilya(routes=[Path("/", whoami)]), "/")
    assert isinstance(outcome.error, RuntimeError)
    assert "needs lilya.middleware.authentication" in str(outcome.error)

    async def auth_only(request: Request) -> str:
        return str(request.auth)

    outcome = await call_http(Lilya(routes=[Path("/", auth_only)]), "/")
    assert "connection.auth needs" in str(outcome.error)


def test_anonymous_user_is_not_authenticated() -> None:
    assert AnonymousUser().is_authenticated is False
    assert AnonymousUser().display_name == ""


async def test_lifespan_passes_through_and_a_sync_on_error_works() -> None:
    import anyio

    inner_scopes: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        inner_scopes.append(scope["type"])

    middleware = AuthenticationMiddleware(inner, TokenBackend())
    with anyio.fail_after(5):
        await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert inner_scopes == ["lifespan"]

    app = make_app(on_error=lambda connection, exc: JSONResponse({"sync": exc.detail}, 401))
    outcome = await call_http(app, "/", headers=[("authorization", "x")])
    assert outcome.body == b'{"sync":"bad token"}'
