"""The ASGI type aliases every other module speaks in.

They are deliberately loose (``MutableMapping[str, Any]``): ASGI servers put
extra keys in scopes and messages, and the framework must pass them through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

__all__ = ["ASGIApp", "Lifespan", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_AppT = TypeVar("_AppT")

#: A lifespan is a callable taking the app and returning an async context
#: manager: code before ``yield`` runs at startup, code after it at shutdown.
#: A bare generator function, async or plain, is taken as one too (the older
#: form Starlette and Lilya still accept).
Lifespan = Callable[[_AppT], AbstractAsyncContextManager[Any] | AsyncIterator[Any] | Iterator[Any]]
