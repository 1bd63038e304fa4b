"""The chat's tokens: a nickname and an expiry, signed with the app's secret (HMAC-SHA256).

``POST /login`` hands one out; ``/ws`` checks it on the handshake (the page
sends it as ``Sec-WebSocket-Protocol: bearer, <token>``). A token is
``NICK.EXPIRY.SIGNATURE`` with the nickname in URL-safe base64, so every
character is one a subprotocol may carry. It is a demo's login: anyone may
take any free-form nickname; what the signature stops is posting under a
nickname the socket was not given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from lilya.tokens import Authenticated

__all__ = ["MAX_NICK", "check_nick", "read_token", "sign_token"]

#: Longest nickname, in characters; longer (or empty) is refused with 400.
MAX_NICK = 24


def check_nick(nick: object) -> str:
    """Return the nickname stripped, or raise ``ValueError`` saying what a nickname is."""
    if not isinstance(nick, str) or not 0 < len(nick.strip()) <= MAX_NICK:
        raise ValueError(f"Choose a nickname of 1 to {MAX_NICK} characters.")
    nick = nick.strip()
    if not nick.isprintable():
        raise ValueError(f"Choose a nickname of 1 to {MAX_NICK} characters.")
    return nick


def _signature(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:40]


def sign_token(secret: bytes, nick: str, expires_at: float) -> str:
    """Return a token naming *nick* until *expires_at* (Unix seconds)."""
    name = base64.urlsafe_b64encode(nick.encode()).decode().rstrip("=")
    payload = f"{name}.{int(expires_at)}"
    return f"{payload}.{_signature(secret, payload)}"


def read_token(secret: bytes, token: str, now: float | None = None) -> Authenticated | None:
    """Return the nickname and expiry of a valid token, ``None`` for a forged or expired one."""
    name, _, rest = token.partition(".")
    expiry, _, signature = rest.partition(".")
    if not expiry.isascii() or not expiry.isdigit() or len(expiry) > 12:
        return None
    if not hmac.compare_digest(signature, _signature(secret, f"{name}.{expiry}")):
        return None
    if int(expiry) <= (time.time() if now is None else now):
        return None
    # Signed by us, so it is the base64 of a nickname we checked.
    nick = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    return Authenticated(nick, expires_at=float(expiry))
