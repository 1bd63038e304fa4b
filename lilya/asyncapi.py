"""AsyncAPI 3.0: the document of what every WebSocket of an app receives and sends.

``app.asyncapi()`` returns the document; ``app.serve_asyncapi()`` adds
``/asyncapi.json`` and ``/asyncapi``, a page that renders it (no CDN: the
renderer is a few dozen lines of JavaScript shipped in this module).

Where the messages come from
----------------------------
For each WebSocket route, the generator reads two attributes, ``receives`` and
``sends`` (a message type as :mod:`lilya.typed` takes, or ``None``), first from
the route (``WebSocketPath(..., receives=...)``), then from its handler,
whatever the handler is: a function, a ``WebSocketController`` class, or an
endpoint instance that serves a protocol of its own. So anything that states
its frames that way is documented, not only what lilya typed itself. A route
with neither is listed with its address and no messages: it exists, and says
nothing about its frames.

In AsyncAPI 3.0 an operation is seen from the application's side: what a
route ``receives`` is a ``receive`` operation (the client sends it), what it
``sends`` a ``send`` operation.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from lilya._handlers import unwrap
from lilya._json import dumps_text
from lilya.typed import InvalidMessage, MessageCodec, TypedChannel, codec_for

__all__ = [
    "asyncapi_document",
    "asyncapi_page",
    "bearer_token",
    "cookie_token",
    "header_token",
    "query_token",
    "subprotocol_token",
    "token_sources",
]

ASYNCAPI_VERSION = "3.0.0"
_REF = "#/components/schemas/{name}"


# -- token sources -----------------------------------------------------------------


def query_token(name: str = "token", description: str = "") -> dict[str, Any]:
    """Return the security scheme of a token in the query string (``?token=...``).

    Browsers cannot set headers on a WebSocket handshake, so a query token (or
    a cookie) is how a page authenticates.
    """
    return _api_key("query", name, description)


def header_token(name: str = "authorization", description: str = "") -> dict[str, Any]:
    """Return the security scheme of a token in a handshake header."""
    return _api_key("header", name, description)


def cookie_token(name: str = "token", description: str = "") -> dict[str, Any]:
    """Return the security scheme of a token in a cookie sent with the handshake."""
    return _api_key("cookie", name, description)


def subprotocol_token(description: str = "") -> dict[str, Any]:
    """Return the security scheme of a token offered as subprotocols ``["bearer", TOKEN]``.

    The one way a browser can send a token in a handshake header
    (``new WebSocket(url, ["bearer", token])``); the server accepts with the
    subprotocol ``"bearer"``.
    """
    return _api_key(
        "header",
        "Sec-WebSocket-Protocol",
        description or 'Offer the subprotocols "bearer", then the token; accepted as "bearer".',
    )


def token_sources(
    *, subprotocol: bool = True, cookie: str | None = "token", query: str | None = "token"
) -> dict[str, dict[str, Any]]:
    """Return the security schemes of a token looked for in the usual three places.

    The places and defaults of the token lookup of lilya's token
    authentication: the ``bearer`` subprotocol, a cookie, a query parameter
    (``None``: not looked at). Pass the result as ``security=``.
    """
    schemes: dict[str, dict[str, Any]] = {}
    if subprotocol:
        schemes["bearerSubprotocol"] = subprotocol_token()
    if cookie is not None:
        schemes["tokenCookie"] = cookie_token(cookie, "A token in this cookie.")
    if query is not None:
        schemes["tokenQuery"] = query_token(
            query, "A token in this query parameter (proxies may log it: prefer the others)."
        )
    return schemes


def bearer_token(description: str = "") -> dict[str, Any]:
    """Return the security scheme of ``Authorization: Bearer <token>`` on the handshake."""
    scheme: dict[str, Any] = {"type": "http", "scheme": "bearer"}
    if description:
        scheme["description"] = description
    return scheme


def _api_key(location: str, name: str, description: str) -> dict[str, Any]:
    scheme: dict[str, Any] = {"type": "httpApiKey", "in": location, "name": name}
    if description:
        scheme["description"] = description
    return scheme


# -- walking the routes ------------------------------------------------------------


class _Socket(NamedTuple):
    """A WebSocket endpoint to document: where, under which name, what it declares."""

    path: str
    name: str | None
    handler: Any
    receives: Any
    sends: Any
    on_invalid: Any


def _sockets(routes: Sequence[Any], prefix: str = "") -> Iterator[_Socket]:
    from lilya.routing import Include, WebSocketPath

    for route in routes:
        if isinstance(route, WebSocketPath):
            handler = unwrap(route.handler)
            if route.receives is not None or route.sends is not None:
                # Typed on the route: lilya validates, so on_invalid is the route's.
                yield _Socket(
                    prefix + route.path,
                    route.name,
                    handler,
                    route.receives,
                    route.sends,
                    route.on_invalid,
                )
            else:
                yield _declared(prefix + route.path, route.name, handler)
        elif isinstance(route, Include):
            if route.router is None and _declares(route.mounted):
                # An endpoint mounted as an app (a protocol endpoint, say),
                # serving WebSockets at the prefix itself.
                yield _declared(prefix + route.path, route.name, unwrap(route.mounted))
            yield from _sockets(route.routes, prefix + route.path)


def _declares(handler: Any) -> bool:
    return getattr(handler, "receives", None) is not None or (
        getattr(handler, "sends", None) is not None
    )


def _declared(path: str, name: str | None, handler: Any) -> _Socket:
    # The interface any handler object can offer: ``receives`` and ``sends``
    # attributes; ``on_invalid`` when it validates with lilya's frame.
    return _Socket(
        path,
        name,
        handler,
        getattr(handler, "receives", None),
        getattr(handler, "sends", None),
        getattr(handler, "on_invalid", None),
    )


def _identifier(text: str) -> str:
    # Component and channel keys: ^[\w\d.\-_]+$ in the AsyncAPI schema.
    cleaned = re.sub(r"[^\w.\-]+", "_", text).strip("_")
    return cleaned or "root"


def _address(path: str) -> tuple[str, list[str]]:
    # "/ws/{room:int}" -> "/ws/{room}": AsyncAPI parameters have no converters.
    names: list[str] = []

    def plain(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "{" + match.group(1) + "}"

    return re.sub(r"\{(\w+)(?::\w+)?\}", plain, path), names


def _asyncapi_schema(schema: Any) -> Any:
    # JSON Schema as msgspec/pydantic write it, in the dialect AsyncAPI 3.0's
    # Schema Object takes: its "discriminator" is the property name, not
    # OpenAPI's object.
    if isinstance(schema, dict):
        out = {key: _asyncapi_schema(value) for key, value in schema.items()}
        discriminator = out.get("discriminator")
        if isinstance(discriminator, dict):
            out["discriminator"] = discriminator.get("propertyName", "type")
        return out
    if isinstance(schema, list):
        return [_asyncapi_schema(item) for item in schema]
    return schema


class _Builder:
    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}
        self._message_names: dict[Any, str] = {}

    def message_refs(self, codec: MessageCodec) -> dict[str, Any]:
        members, components = codec.schemas(_REF)
        for name, schema in components.items():
            self.schemas.setdefault(name, _asyncapi_schema(schema))
        refs: dict[str, Any] = {}
        for member, (name, payload) in zip(codec.members, members, strict=True):
            key = self._message_names.get(member)
            if key is None:
                key = _identifier(name)
                while key in self.messages:
                    key += "_"
                self._message_names[member] = key
                doc = (member.__doc__ or "").strip()
                message: dict[str, Any] = {
                    "name": key,
                    "title": name,
                    "contentType": "application/json",
                    "payload": _asyncapi_schema(payload),
                }
                tag = next((t for t, cls in codec.tags.items() if cls is member), None)
                if tag is not None:
                    message["summary"] = f'type "{tag}"'
                if doc and not doc.startswith(name + "("):
                    message["description"] = doc
                self.messages[key] = message
            refs[key] = {"$ref": f"#/components/messages/{key}"}
        return refs

    def add_channel(
        self,
        channel_id: str,
        address: str,
        parameters: list[str],
        description: str,
        directions: list[tuple[str, MessageCodec]],
    ) -> None:
        while channel_id in self.channels:
            channel_id += "_"
        channel: dict[str, Any] = {"address": address}
        if description:
            channel["description"] = description
        if parameters:
            channel["parameters"] = {
                name: {"description": f"the {name} part of the path"} for name in parameters
            }
        messages: dict[str, Any] = {}
        per_action: dict[str, list[str]] = {}
        for action, codec in directions:
            refs = self.message_refs(codec)
            messages.update(refs)
            per_action.setdefault(action, []).extend(refs)
        channel["messages"] = messages
        self.channels[channel_id] = channel
        for action, keys in per_action.items():
            seen = list(dict.fromkeys(keys))
            self.operations[f"{channel_id}.{action}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": (
                    "Messages a client sends on this socket"
                    if action == "receive"
                    else "Messages the server sends on this socket"
                ),
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{key}"} for key in seen],
            }


def asyncapi_document(
    routes: Sequence[Any],
    *,
    title: str = "lilya app",
    version: str = "1.0.0",
    description: str = "",
    servers: Mapping[str, Mapping[str, Any]] | None = None,
    security: Mapping[str, Mapping[str, Any]] | None = None,
    channels: Sequence[TypedChannel[Any]] = (),
) -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document of *routes* (what ``app.asyncapi()`` calls).

    Args:
        routes: the app's routes (``Include`` is followed).
        title, version, description: the document's ``info``.
        servers: AsyncAPI server objects by name, e.g.
            ``{"production": {"host": "chat.example.com", "protocol": "wss"}}``;
            default: ``localhost:8000`` over ``ws``.
        security: security schemes by name: :func:`token_sources`, or your
            pick of :func:`subprotocol_token`, :func:`query_token`,
            :func:`cookie_token`, :func:`header_token`, :func:`bearer_token`;
            every server then lists them (a client may use any one).
        channels: the :class:`~lilya.typed.TypedChannel` objects whose
            payloads to document.
    """
    builder = _Builder()
    sockets = list(_sockets(routes))
    for socket in sockets:
        address, parameters = _address(socket.path)
        directions: list[tuple[str, MessageCodec]] = []
        if socket.receives is not None:
            directions.append(("receive", codec_for(socket.receives)))
        if socket.sends is not None:
            directions.append(("send", codec_for(socket.sends)))
        # The invalid_message frame is lilya's answer where lilya validates:
        # a route typed with receives=, or a controller (on_invalid="error").
        if socket.receives is not None and socket.on_invalid == "error":
            directions.append(("send", codec_for(InvalidMessage)))
        # A protocol endpoint (lilya.protocol) also answers requests with
        # replies that carry no ``type`` (``replies``), and names the typed
        # channels it serves (``typed_channels``).
        replies = getattr(socket.handler, "replies", None)
        if replies is not None:
            directions.append(("send", codec_for(replies)))
        doc = (getattr(socket.handler, "__doc__", None) or "").strip()
        builder.add_channel(
            _identifier(socket.name or address),
            address,
            parameters,
            doc.split("\n\n")[0],
            directions,
        )
    served = [
        typed for socket in sockets for typed in getattr(socket.handler, "typed_channels", ())
    ]
    for typed in [*channels, *served]:
        address = typed.address
        builder.add_channel(
            _identifier("channel." + address),
            address,
            list(typed.parameters),
            typed.description or "A lilya.channels channel: its events carry this payload.",
            [("send", typed.codec)],
        )
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    server_objects = {
        name: dict(server)
        for name, server in (
            servers or {"default": {"host": "localhost:8000", "protocol": "ws"}}
        ).items()
    }
    components: dict[str, Any] = {"messages": builder.messages, "schemas": builder.schemas}
    if security:
        components["securitySchemes"] = {name: dict(scheme) for name, scheme in security.items()}
        for server in server_objects.values():
            server.setdefault(
                "security", [{"$ref": f"#/components/securitySchemes/{name}"} for name in security]
            )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "servers": server_objects,
        "channels": builder.channels,
        "operations": builder.operations,
        "components": components,
    }


# -- the page ------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ · AsyncAPI</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:960px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin:32px 0 8px;border-bottom:1px solid #d5d9e0}
.muted{color:#5b6475}.card{background:#fff;border:1px solid #d5d9e0;border-radius:8px;
padding:14px 18px;margin:12px 0}.addr{font:600 16px ui-monospace,monospace}
.badge{display:inline-block;font:600 12px system-ui;border-radius:10px;padding:1px 9px;
margin-right:6px;color:#fff}.receive{background:#2b6cb0}.send{background:#2f855a}
.msg{border-left:3px solid #d5d9e0;margin:10px 0;padding:4px 12px}
table{border-collapse:collapse;width:100%;font-size:14px}
td,th{text-align:left;padding:3px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
code,pre{font:13px ui-monospace,monospace}pre{background:#f0f2f5;padding:8px;border-radius:6px;
overflow:auto;margin:6px 0}
</style></head><body><main id="doc">Loading…</main>
<script type="application/json" id="asyncapi">__DOCUMENT__</script>
<script>
"use strict";
const doc = JSON.parse(document.getElementById("asyncapi").textContent);
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid instanceof Node ? kid : String(kid));
  return node;
}
function deref(obj) {
  let seen = 0;
  while (obj && obj.$ref && seen++ < 20) {
    obj = obj.$ref.slice(2).split("/").reduce((o, k) => (o || {})[k], doc);
  }
  return obj || {};
}
function typeOf(s) {
  s = deref(s);
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  const alts = s.anyOf || s.oneOf;
  if (alts) return alts.map(typeOf).join(" | ");
  if (s.type === "array") return (s.items ? typeOf(s.items) : "any") + "[]";
  if (s.title && s.properties) return s.title;
  return s.type || "any";
}
function example(s, depth) {
  s = deref(s);
  if (depth > 4) return null;
  if (s.examples && s.examples.length) return s.examples[0];
  if (s.default !== undefined) return s.default;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  const alts = s.anyOf || s.oneOf;
  if (alts) return example(alts[0], depth + 1);
  switch (s.type) {
    case "object": {
      const out = {};
      for (const [k, v] of Object.entries(s.properties || {})) out[k] = example(v, depth + 1);
      return out;
    }
    case "array": return s.items ? [example(s.items, depth + 1)] : [];
    case "string": return "string";
    case "integer": return 0;
    case "number": return 0.5;
    case "boolean": return true;
    default: return null;
  }
}
function fields(schema) {
  const s = deref(schema);
  const required = new Set(s.required || []);
  const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
    el("th", {}, "required"), el("th", {}, "description")));
  for (const [name, prop] of Object.entries(s.properties || {})) {
    table.append(el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, typeOf(prop)),
      el("td", {}, required.has(name) ? "yes" : "no"),
      el("td", {}, deref(prop).description || "")));
  }
  return table;
}
function message(ref) {
  const m = deref(ref);
  const box = el("div", {class: "msg"}, el("strong", {}, m.title || m.name || "message"), " ",
    el("span", {class: "muted"}, m.summary || ""));
  if (m.description) box.append(el("div", {class: "muted"}, m.description));
  box.append(fields(m.payload), el("pre", {}, JSON.stringify(example(m.payload, 0), null, 2)));
  return box;
}
const root = document.getElementById("doc");
root.textContent = "";
root.append(el("h1", {}, doc.info.title), el("div", {class: "muted"},
  "AsyncAPI " + doc.asyncapi + " · version " + doc.info.version));
if (doc.info.description) root.append(el("p", {}, doc.info.description));
root.append(el("h2", {}, "Servers"));
for (const [name, s] of Object.entries(doc.servers || {})) {
  const url = s.protocol + "://" + s.host + (s.pathname || "");
  const card = el("div", {class: "card"}, el("span", {class: "addr"}, url), " ",
    el("span", {class: "muted"}, name));
  for (const sec of s.security || []) {
    const scheme = deref(sec);
    card.append(el("div", {class: "muted"}, "auth: " + (scheme.type === "http"
      ? "Authorization: " + scheme.scheme : scheme.name + " in " + scheme.in)));
  }
  root.append(card);
}
root.append(el("h2", {}, "Channels"));
for (const [id, ch] of Object.entries(doc.channels || {})) {
  const card = el("div", {class: "card", id: "channel-" + id},
    el("div", {class: "addr"}, ch.address || id));
  if (ch.description) card.append(el("p", {class: "muted"}, ch.description));
  const ops = Object.values(doc.operations || {}).filter((op) => deref(op.channel) === ch);
  if (!ops.length) card.append(el("p", {class: "muted"}, "No declared message types."));
  for (const op of ops) {
    card.append(el("h3", {}, el("span", {class: "badge " + op.action},
      op.action === "receive" ? "client → server" : "server → client"), op.summary || ""));
    for (const ref of op.messages || []) card.append(message(ref));
  }
  root.append(card);
}
</script></body></html>
"""


def asyncapi_page(document: Mapping[str, Any]) -> str:
    """Return a self-contained HTML page that renders *document* (no external resources)."""
    # Inside <script>, "</" would end the element: JSON allows "<\\/" for it.
    embedded = dumps_text(document).replace("</", "<\\/")
    title = html.escape(str(document.get("info", {}).get("title", "AsyncAPI")))
    return _PAGE.replace("__TITLE__", title).replace("__DOCUMENT__", embedded)
