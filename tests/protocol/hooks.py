"""Hooks the protocol tests share: tokens that name users, some of them expiring."""

from __future__ import annotations

import time
from typing import Any

from lilya.protocol import Client, ProtocolError
from lilya.tokens import Authenticated


def authenticate(websocket: Any, token: str) -> Any:
    """``ann``/``bob`` never expire; ``ann:0.3`` expires in 0.3 s; anything else is refused."""
    user, _, seconds = token.partition(":")
    if user not in ("ann", "bob"):
        return None
    if seconds:
        return Authenticated(user, expires_at=time.time() + float(seconds))
    return user


async def authorize(user: Any, channel: str, action: str) -> bool:
    """Everyone may read ``public:*``; only ann may publish, and ``secret`` is ann's alone."""
    if channel.startswith("secret"):
        return bool(user == "ann")
    if action == "publish":
        return bool(user == "ann")
    return True


async def whoami(client: Client, data: Any) -> Any:
    return {"user": client.user, "name": client.name, "echo": data}


def refuse(client: Client, data: Any) -> Any:
    raise ProtocolError("forbidden", "not today")


def broken(client: Client, data: Any) -> Any:
    raise RuntimeError("the rpc handler has a bug")


def unencodable(client: Client, data: Any) -> Any:
    return {"set": {1, 2}}


RPC = {"whoami": whoami, "refuse": refuse, "broken": broken, "unencodable": unencodable}
