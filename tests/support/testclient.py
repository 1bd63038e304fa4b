"""Helpers the test-client tests share: small ASGI apps, and the factory type the fixture returns.

The ``test_client_factory`` fixture itself (Starlette's name for it) is in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread

from lilya.testclient import TestClient
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocket

ClientFactory = Callable[..., TestClient]


async def send_text_response(send: Send, body: bytes, status_code: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def scope_recorder(seen: list[Scope]) -> Callable[[Scope, Receive, Send], Any]:
    """An app that records each scope and answers HTTP 200 / accepts WebSockets."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        if scope["type"] == "http":
            await send_text_response(send, b"ok")
        else:
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            await websocket.close()

    return app


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, then echo text and bytes frames until the client leaves."""
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


def lifespan_app(events: list[str], **answers: str) -> Callable[[Scope, Receive, Send], Any]:
    """A raw lifespan app answering each phase with ``answers.get(phase, "complete")``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send_text_response(send, repr(sorted(scope["state"].items())).encode())
            return
        while True:
            message = await receive()
            phase = message["type"].split(".")[1]
            events.append(phase)
            answer = answers.get(phase, "complete")
            await send({"type": f"lifespan.{phase}.{answer}", "message": f"{phase} said no"})
            if phase == "startup":
                scope["state"]["started"] = True
            else:
                return

    return app


def answering_handshake_with(messages: list[Message]) -> ASGIApp:
    """An app that reads the connect, then sends *messages* as they are."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for message in messages:
            await send(message)

    return app


# -- one test body for both clients -------------------------------------------------


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """Call a client's or session's *method*: awaited if it is async, else in a worker thread.

    The sync client blocks while it works; in a worker thread it leaves the
    test's own loop free (it runs the app in a loop of its own).
    """
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    return await anyio.to_thread.run_sync(functools.partial(method, *args))


@contextlib.asynccontextmanager
async def entered(context: Any) -> AsyncIterator[Any]:
    """Enter a client or a session: ``async with``, or ``with`` in a worker thread."""
    if hasattr(context, "__aenter__"):
        async with context as value:
            yield value
        return
    value = await anyio.to_thread.run_sync(context.__enter__)
    try:
        yield value
    except BaseException as exc:
        if not await anyio.to_thread.run_sync(context.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await anyio.to_thread.run_sync(context.__exit__, None, None, None)
