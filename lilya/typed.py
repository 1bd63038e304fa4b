"""Typed messages: declare what a socket receives and sends, get validation for free.

::

    class Join(msgspec.Struct, tag="join"):
        room: str

    class Say(msgspec.Struct, tag="say"):
        text: str

    @app.websocket("/ws", receives=Join | Say, sends=Said)
    async def chat(websocket: TypedWebSocket[Join | Say, Said]) -> None:
        await websocket.accept()
        async for message in websocket.iter_messages():
            if isinstance(message, Say):
                await websocket.send_message(Said(text=message.text))

A message type is one class or a union of classes told apart by their ``type``
field (a *tagged union*): ``msgspec.Struct`` classes (with ``tag=...``; msgspec
puts the tag in the ``type`` field), dataclasses and ``TypedDict`` classes
(with a ``type: Literal["join"]`` field), validated by msgspec; or pydantic v2
models (with a ``type: Literal["join"]`` field) when pydantic is installed,
validated by pydantic. One union is all msgspec or all pydantic.

Theory of operation
-------------------
A :class:`MessageCodec` is built once per declared type, when the route is
built, so a mistake in a declaration (an untagged member, a type neither
engine knows) is an ``ImproperlyConfigured`` at import time, not a failure on
the first message. Per message it costs one decode-and-validate pass:

* a union of msgspec Structs is decoded by one ``msgspec.json.Decoder`` of the
  whole union (msgspec reads the tag and validates in the same pass);
* a union with dataclasses or TypedDicts (which msgspec cannot tell apart on
  its own) first reads only the ``type`` field (a Struct of one field, which
  skips the rest of the document at C speed), then decodes with that member's
  decoder;
* pydantic models go through one ``TypeAdapter`` of the union with
  ``Field(discriminator="type")``.

What the peer sends that does not fit is the peer's fault
(:class:`InvalidMessageError`: the field's path and the problem), answered
with an :class:`InvalidMessage` frame or a 1007 close, never a server error.
What *you* send that does not fit is your bug (:class:`MessageTypeError`, a
``TypeError``): lilya checks every outgoing message against the declared type
before it goes out, so the wire never carries a frame the documentation does
not promise. For msgspec the check is a decode of the encoded bytes (msgspec
does not check field types when you build a Struct), or for a Struct with
nested Structs of plain fields a conversion into its *mirror*, cheaper
(``lilya._struct_mirror``); for pydantic it is pydantic's own strict
serializer (``warnings="error"``), in the same pass, or its msgspec mirror
(``lilya._pydantic_send``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from lilya._close import fit_reason, received_code
from lilya._struct_mirror import struct_mirror
from lilya.exceptions import ImproperlyConfigured, WebSocketPeerError, WebSocketRuntimeError
from lilya.status import WS_1007_INVALID_FRAME_PAYLOAD_DATA
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState

try:
    import pydantic

    from lilya import _pydantic_send
except ImportError:  # pragma: no cover - the tests run with the pydantic extra installed
    pydantic = None  # type: ignore[assignment]  # pydantic is optional
    _pydantic_send = None  # type: ignore[assignment]  # needs pydantic

__all__ = [
    "InvalidMessage",
    "InvalidMessageError",
    "MessageCodec",
    "MessageTypeError",
    "OnInvalid",
    "TypedChannel",
    "TypedWebSocket",
    "codec_for",
]

R = TypeVar("R")
S = TypeVar("S")

OnInvalid = Literal["error", "close"]
_ON_INVALID = ("error", "close")

# A problem quoted back to the client is bounded: msgspec quotes the value it
# refused (an unknown tag, say), and a client may send a megabyte of it.
_MAX_PROBLEM = 200
_TOO_DEEP = "Nested too deeply"


class InvalidMessage(msgspec.Struct, tag="invalid_message", kw_only=True):
    """The frame lilya sends when a client's message does not fit the declared type.

    ``{"type": "invalid_message", "path": "$.text", "problem": "Expected `str`, got `int`"}``:
    *path* is where in the message (``$`` for the whole of it), *problem* what
    is wrong there. The connection stays open: the client may send again.
    """

    path: str
    problem: str


class InvalidMessageError(WebSocketPeerError):
    """A client's message is not valid JSON or does not fit the declared type.

    The peer's fault (a ``ValueError``, like every
    :class:`~lilya.exceptions.WebSocketPeerError`): left unhandled it closes
    with 1007 (``WS_1007_INVALID_FRAME_PAYLOAD_DATA``, a payload that is not
    what its type promises), never a server error.

    Attributes:
        path: where the problem is, as a JSON path (``$``, ``$.text``, ``$.items[2]``).
        problem: what is wrong there, e.g. ``Expected `str`, got `int```.
    """

    close_code = WS_1007_INVALID_FRAME_PAYLOAD_DATA

    def __init__(self, path: str, problem: str) -> None:
        if len(problem) > _MAX_PROBLEM:
            problem = problem[: _MAX_PROBLEM - 3] + "..."
        super().__init__(f"{problem} at {path}")
        self.path = path
        self.problem = problem

    def frame(self) -> InvalidMessage:
        """The :class:`InvalidMessage` frame that tells the client."""
        return InvalidMessage(path=self.path, problem=self.problem)

    def close_reason(self) -> str:
        """The problem as a close reason: a ``str`` of at most 123 UTF-8 bytes."""
        return fit_reason(f"invalid message at {self.path}: {self.problem}")


class MessageTypeError(TypeError):
    """You sent an object that does not match the type the route declared it sends.

    Attributes:
        value: the object you passed.
        expected: the declared type, as text (``Message | Error``).
    """

    def __init__(self, value: Any, expected: str, detail: str) -> None:
        super().__init__(
            f"send_message() got {type(value).__name__} {_short_repr(value)}, which does not "
            f"match the declared sends={expected}: {detail}. Nothing was sent; build the "
            "message from one of the declared types with fields of the declared types."
        )
        self.value = value
        self.expected = expected


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # an int too long to print, a __repr__ that raises: still say what
        return f"<{type(value).__name__} object>"
    return text if len(text) <= 80 else text[:77] + "..."


# -- members and tags ----------------------------------------------------------


def _union_members(message_type: Any) -> tuple[Any, ...]:
    origin = get_origin(message_type)
    if origin is Union or isinstance(message_type, types.UnionType):
        return get_args(message_type)
    return (message_type,)


def _is_pydantic(cls: Any) -> bool:
    return pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def _is_struct(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, msgspec.Struct)


def _is_typeddict(cls: Any) -> bool:
    return typing.is_typeddict(cls)


def _literal_tag(cls: Any) -> str | None:
    # dataclasses, TypedDicts and pydantic models carry their tag as a field
    # annotated Literal["join"].
    try:
        hints = typing.get_type_hints(cls, include_extras=False)
    except Exception:  # pragma: no cover - annotations that do not resolve are the user's
        return None
    hint = hints.get("type")
    if get_origin(hint) is Literal:
        values = get_args(hint)
        if len(values) == 1 and isinstance(values[0], str):
            return values[0]
    return None


def _tag_of(cls: Any) -> str | None:
    if _is_struct(cls):
        config = cls.__struct_config__
        if config.tag is None:
            return None
        if config.tag_field != "type":
            raise ImproperlyConfigured(
                f"{cls.__name__} is tagged on {config.tag_field!r}; lilya's message unions are "
                "tagged on 'type' (leave tag_field at its default)."
            )
        return str(config.tag)
    return _literal_tag(cls)


def _describe(members: tuple[Any, ...]) -> str:
    return " | ".join(getattr(member, "__name__", repr(member)) for member in members)


def _json_path(location: tuple[Any, ...]) -> str:
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _msgspec_problem(exc: msgspec.MsgspecError) -> InvalidMessageError:
    text = str(exc)
    problem, marker, path = text.rpartition(" - at `")
    if not marker:
        return InvalidMessageError("$", text)
    return InvalidMessageError(path.rstrip("`"), problem)


class _TypeField(msgspec.Struct):
    type: str


# -- the codec -----------------------------------------------------------------


class MessageCodec:
    """Decode, validate and encode one declared message type.

    You rarely build one yourself: ``receives=`` and ``sends=`` on a route or
    controller do, through :func:`codec_for`.

    Args:
        message_type: a class, or a union of classes with distinct ``type`` tags.

    Attributes:
        members: the classes of the union, in declaration order.
        tags: tag value -> class, for the members that have one.
        engine: ``"msgspec"`` or ``"pydantic"``.

    Raises:
        ImproperlyConfigured: a member is neither a msgspec Struct, a
            dataclass, a TypedDict nor a pydantic model; msgspec and pydantic
            members are mixed; or a union member has no tag, or two share one.
    """

    def __init__(self, message_type: Any) -> None:
        self.message_type = message_type
        self.members = _union_members(message_type)
        for member in self.members:
            if not (
                _is_struct(member)
                or dataclasses.is_dataclass(member)
                or _is_typeddict(member)
                or _is_pydantic(member)
            ):
                raise ImproperlyConfigured(
                    f"{member!r} cannot be a message type: use a msgspec.Struct, a dataclass, "
                    "a TypedDict or a pydantic model (with pydantic installed)."
                )
        pydantic_members = [member for member in self.members if _is_pydantic(member)]
        if pydantic_members and len(pydantic_members) != len(self.members):
            raise ImproperlyConfigured(
                f"{_describe(self.members)} mixes pydantic models with other types; "
                "declare a union of pydantic models only, or of msgspec-validated types only."
            )
        self.engine: Literal["msgspec", "pydantic"] = "pydantic" if pydantic_members else "msgspec"
        self.tags: dict[str, Any] = {}
        for member in self.members:
            tag = _tag_of(member)
            if tag is None:
                if len(self.members) > 1:
                    raise ImproperlyConfigured(
                        f"{member.__name__} is in the union {_describe(self.members)} but has "
                        "no tag: give it one (msgspec.Struct, tag='...') or a field "
                        "type: Literal['...'], so a message says which member it is."
                    )
                continue
            if tag in self.tags:
                raise ImproperlyConfigured(
                    f"{self.tags[tag].__name__} and {member.__name__} share the tag {tag!r}; "
                    "each member of a message union needs its own."
                )
            self.tags[tag] = member
        self.description = _describe(self.members)
        self._classes = tuple(member for member in self.members if not _is_typeddict(member))
        self._takes_dict = any(_is_typeddict(member) for member in self.members)
        self.decode: Callable[[str | bytes], Any]
        self._encode: Callable[[Any], bytes]
        if self.engine == "pydantic":
            self._build_pydantic()
        else:
            self._build_msgspec()

    def __repr__(self) -> str:
        return f"MessageCodec({self.description})"

    # -- msgspec ---------------------------------------------------------------
    def _build_msgspec(self) -> None:
        one_pass = len(self.members) == 1 or all(_is_struct(member) for member in self.members)
        raw_decode: Callable[[str | bytes], Any]
        if one_pass:
            decoder = msgspec.json.Decoder(self.message_type)
            raw_decode = decoder.decode
        else:
            peek = msgspec.json.Decoder(_TypeField).decode
            decoders = {
                tag: msgspec.json.Decoder(member).decode for tag, member in self.tags.items()
            }
            expected = ", ".join(repr(tag) for tag in self.tags)

            def raw_decode(data: str | bytes) -> Any:
                tag = peek(data).type
                member_decode = decoders.get(tag)
                if member_decode is None:
                    raise msgspec.ValidationError(
                        f"Invalid value {tag!r}, expected one of {expected} - at `$.type`"
                    )
                return member_decode(data)

        def decode(data: str | bytes) -> Any:
            try:
                return raw_decode(data)
            except msgspec.MsgspecError as exc:
                raise _msgspec_problem(exc) from None
            except RecursionError:
                # msgspec bounds nesting by the recursion limit, and says so
                # with a RecursionError rather than one of its own errors.
                raise InvalidMessageError("$", _TOO_DEEP) from None

        self.decode = decode
        self._msgspec_encode = msgspec.json.Encoder().encode
        # Structs with nested Structs of plain fields: checked by a mirror. A
        # union with none skips the lookup (~430 instructions a message).
        self._mirrors: dict[Any, Any] = {}
        for member in self.members:
            mirror = struct_mirror(member) if _is_struct(member) else None
            if mirror is not None:
                self._mirrors[member] = mirror
        self._encode = self._encode_mirrored if self._mirrors else self._encode_msgspec

    # -- pydantic --------------------------------------------------------------
    def _build_pydantic(self) -> None:
        if len(self.members) == 1:
            adapter: Any = pydantic.TypeAdapter(self.message_type)
        else:
            annotated: Any = typing.Annotated[
                self.message_type, pydantic.Field(discriminator="type")
            ]
            adapter = pydantic.TypeAdapter(annotated)
        validate = adapter.validate_json
        union = len(self.members) > 1

        def decode(data: str | bytes) -> Any:
            try:
                return validate(data)
            except RecursionError:  # pragma: no cover - pydantic-core bounds depth itself
                raise InvalidMessageError("$", _TOO_DEEP) from None
            except pydantic.ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                location = tuple(error.get("loc", ()))
                if union and location and error["type"] not in ("union_tag_invalid",):
                    location = location[1:]  # pydantic puts the tag first
                if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                    location = ("type",) if error["type"] == "union_tag_invalid" else ()
                raise InvalidMessageError(_json_path(location), str(error["msg"])) from None

        encoder = _pydantic_send.Encoder(
            {member: _tag_of(member) for member in self.members}, self._refuse
        )
        self.decode = decode
        self._encode = encoder.encode

    # -- encoding ----------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """Return *value* as JSON bytes, after checking it fits the declared type.

        Raises:
            MessageTypeError: *value* is not one of the declared types, or a
                field holds a value of the wrong type; nothing is sent.
        """
        return self._encode(value)

    def _refuse(self, value: Any, detail: str) -> MessageTypeError:
        return MessageTypeError(value, self.description, detail)

    def _encode_mirrored(self, value: Any) -> bytes:
        mirror = self._mirrors.get(type(value))
        if mirror is not None:
            # Its mirror checks every field in C, cheaper than decoding the
            # frame (lilya/_struct_mirror.py); what it refuses, the decode judges.
            try:
                msgspec.convert(value, mirror, from_attributes=True)
                return self._msgspec_encode(value)
            except (ValueError, TypeError, OverflowError, AttributeError):
                pass  # a ValidationError is a ValueError
        return self._encode_msgspec(value)

    def _encode_msgspec(self, value: Any) -> bytes:
        if not (isinstance(value, self._classes) or (self._takes_dict and type(value) is dict)):
            raise MessageTypeError(value, self.description, f"expected one of {self.description}")
        try:
            data = self._msgspec_encode(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageTypeError(value, self.description, str(exc)) from None
        try:
            self.decode(data)
        except InvalidMessageError as exc:
            raise MessageTypeError(value, self.description, str(exc)) from None
        return data

    # -- schemas -----------------------------------------------------------------
    def schemas(self, ref_template: str) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        """Return ``[(name, schema)]`` per member and the shared component schemas.

        Each member's schema is a ``$ref`` into the components, which hold the
        members and every type they refer to, as JSON Schema.
        """
        if self.engine == "pydantic":
            from pydantic.json_schema import models_json_schema

            mapping, top = models_json_schema(
                [(member, "validation") for member in self.members],
                ref_template=ref_template.replace("{name}", "{model}"),
            )
            members = [
                (member.__name__, mapping[(member, "validation")]) for member in self.members
            ]
            return members, dict(top.get("$defs", {}))
        refs, components = msgspec.json.schema_components(self.members, ref_template=ref_template)
        names = [member.__name__ for member in self.members]
        return list(zip(names, refs, strict=True)), components


_codecs: dict[Any, MessageCodec] = {}


def codec_for(message_type: Any) -> MessageCodec:
    """Return the (cached) :class:`MessageCodec` of *message_type*.

    Raises:
        ImproperlyConfigured: as :class:`MessageCodec`.
    """
    try:
        return _codecs[message_type]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover - an unhashable annotation; build it uncached
        return MessageCodec(message_type)
    codec = _codecs[message_type] = MessageCodec(message_type)
    return codec


def check_on_invalid(on_invalid: object) -> OnInvalid:
    """Return *on_invalid* if it is ``"error"`` or ``"close"``.

    Raises:
        ImproperlyConfigured: any other value.
    """
    if on_invalid not in _ON_INVALID:
        raise ImproperlyConfigured(
            f'on_invalid is {on_invalid!r}; use "error" (answer with an invalid_message frame '
            'and keep the connection) or "close" (close with 1007).'
        )
    return on_invalid  # type: ignore[return-value]  # narrowed by the membership test


# -- the typed socket -----------------------------------------------------------


class TypedWebSocket(WebSocket, Generic[R, S]):
    """A :class:`~lilya.websockets.WebSocket` that receives and sends declared types.

    A route or controller with ``receives=`` / ``sends=`` hands you one of
    these; everything a ``WebSocket`` does still works (``receive_json``,
    ``send_text``, ``close``...), and three methods add the types.

    Args:
        scope, receive, send: as for ``WebSocket``.
        receives: the type clients send (``None``: untyped).
        sends: the type you send (``None``: untyped).
        on_invalid: what an invalid client message gets: ``"error"`` (an
            :class:`InvalidMessage` frame; the connection stays open) or
            ``"close"`` (close 1007 with the problem as reason).
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        receives: Any = None,
        sends: Any = None,
        on_invalid: OnInvalid = "error",
    ) -> None:
        super().__init__(scope, receive, send)
        self.receives_codec = None if receives is None else codec_for(receives)
        self.sends_codec = None if sends is None else codec_for(sends)
        self._encode_sends = _no_sends if self.sends_codec is None else self.sends_codec._encode
        self.on_invalid = check_on_invalid(on_invalid)

    async def receive_message(self) -> R:
        """Receive the next message that fits ``receives``, decoded.

        An invalid message (not JSON, or not of the declared type) is answered
        as ``on_invalid`` says: with an :class:`InvalidMessage` frame, and this
        waits for the next message; or with a 1007 close, and this raises
        ``WebSocketDisconnect(1007)``.

        Raises:
            WebSocketDisconnect: the client left (or was closed for an invalid message).
            WebSocketRuntimeError: the route declares no ``receives``, or the
                connection is not accepted yet / already closed.
        """
        codec = self.receives_codec
        if codec is None:
            raise WebSocketRuntimeError(
                "receive_message() needs a declared type: pass receives=... to the route "
                "or set it on the controller; or use receive_json()."
            )
        while True:
            message = await self._next_frame()
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            try:
                return codec.decode(data)  # type: ignore[no-any-return]  # R is the codec's type
            except InvalidMessageError as exc:
                await self.reject(exc)

    async def _next_frame(self) -> Message:
        if self.application_state is not WebSocketState.CONNECTED:
            raise WebSocketRuntimeError(
                'WebSocket is not connected. Need to call "accept" first.',
                state=self.application_state.name,
            )
        while True:
            message = await self.receive()
            if message["type"] == "websocket.receive":
                return message
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(received_code(message), message.get("reason") or "")

    async def reject(self, error: InvalidMessageError) -> None:
        """Answer an invalid client message as ``on_invalid`` says.

        Raises:
            WebSocketDisconnect: ``on_invalid="close"``: after closing with 1007.
        """
        if self.on_invalid == "error":
            await self.send_text(_frame_encode(error.frame()).decode())
            return
        reason = error.close_reason()
        await self.close(WS_1007_INVALID_FRAME_PAYLOAD_DATA, reason)
        raise WebSocketDisconnect(WS_1007_INVALID_FRAME_PAYLOAD_DATA, reason)

    async def iter_messages(self) -> AsyncIterator[R]:
        """Yield decoded messages until the client disconnects, then stop cleanly.

        Invalid messages are answered as in :meth:`receive_message` (and with
        ``on_invalid="close"``, the iteration ends).
        """
        try:
            while True:
                yield await self.receive_message()
        except WebSocketDisconnect:
            return

    def send_message(self, message: S) -> Coroutine[Any, Any, None]:
        """Send *message*, encoded as JSON in a text frame, after checking its type.

        Use it as ``await websocket.send_message(message)``. It is a plain
        method that returns the send's coroutine, a frame less per message
        than an ``async def`` awaiting :meth:`send_text` (see
        docs/benchmarks.md, "Typed messages"); the check and the encoding run
        when that coroutine is awaited, so everything below is raised by the
        ``await``, as from any coroutine.

        Raises:
            MessageTypeError: *message* does not fit ``sends``; nothing is sent.
            WebSocketRuntimeError: the route declares no ``sends``, or the
                connection is not accepted yet / already closed.
            WebSocketDisconnect: the client is gone.
        """
        return self._send_encoded(self._encode_sends, message)


def _no_sends(message: Any) -> bytes:
    raise WebSocketRuntimeError(
        "send_message() needs a declared type: pass sends=... to the route "
        "or set it on the controller; or use send_json()."
    )


_frame_encode = msgspec.json.Encoder().encode


# -- typed channels ----------------------------------------------------------------


class TypedChannel(Generic[R]):
    """A family of channels whose payloads have one declared type.

    ::

        rooms = TypedChannel(channels, "room:{room}", ChatMessage)
        await rooms.publish(ChatMessage(user="ann", text="hi"), room="lobby")
        async with rooms.subscribe(room="lobby") as subscription:
            async for event in subscription:
                message = rooms.payload(event)   # a ChatMessage, or None

    Publishing checks the payload (a :class:`MessageTypeError` for a wrong
    one) and stores it as plain JSON data, so untyped subscribers, ``relay()``
    and other processes read the same thing; :meth:`payload` turns a message
    event's data back into the type. ``app.asyncapi(channels=[rooms])``
    documents it.

    Args:
        channels: the :class:`~lilya.channels.Channels` to publish on.
        address: the channel name, with ``{param}`` placeholders for the parts
            that vary (``"room:{room}"``); :meth:`name` fills them.
        payload: the payload type (a message type, as for ``receives=``).
        description: shown in the AsyncAPI document.

    Raises:
        ImproperlyConfigured: *payload* is not a message type.
    """

    def __init__(self, channels: Any, address: str, payload: Any, *, description: str = "") -> None:
        self.channels = channels
        self.address = address
        self.codec = codec_for(payload)
        self.payload_type = payload
        self.description = description
        self.parameters = tuple(
            part.split("}", 1)[0] for part in address.split("{")[1:] if "}" in part
        )

    def __repr__(self) -> str:
        return f"TypedChannel({self.address!r}, {self.codec.description})"

    def name(self, **params: Any) -> str:
        """Return the channel name: *address* with its placeholders filled from *params*.

        Raises:
            ImproperlyConfigured: a placeholder is missing, or *params* has one too many.
        """
        missing = [name for name in self.parameters if name not in params]
        extra = [name for name in params if name not in self.parameters]
        if missing or extra:
            raise ImproperlyConfigured(
                f"Channel {self.address!r} takes the parameters "
                f"{', '.join(self.parameters) or '(none)'}; got {', '.join(params) or '(none)'}."
            )
        return self.address.format(**{key: str(value) for key, value in params.items()})

    async def publish(self, payload: R, *, message_id: str | None = None, **params: Any) -> Any:
        """Check *payload* against the declared type and publish it; return the event.

        Args:
            payload: an object of the declared type.
            message_id: as for ``Channels.publish`` (a retry is delivered once).
            params: the address placeholders (``room="lobby"``).

        Raises:
            MessageTypeError: *payload* does not fit the declared type; nothing
                is published.
            ImproperlyConfigured: *params* does not fill the address.
        """
        channel = self.name(**params)
        data = msgspec.json.decode(self.codec.encode(payload))
        return await self.channels.publish(channel, data, message_id=message_id)

    def subscribe(self, **params: Any) -> Any:
        """Return ``Channels.subscribe`` of the channel *params* name.

        For ``since=``, ``presence=`` and the other options, call
        ``channels.subscribe(typed.name(...), ...)`` yourself.
        """
        return self.channels.subscribe(self.name(**params))

    def payload(self, event: Any) -> R | None:
        """Return a message event's data as the declared type; ``None`` for other events.

        Raises:
            InvalidMessageError: the stored data does not fit the type (a
                publisher that bypassed this wrapper).
        """
        if event.type != "message":
            return None
        return self.codec.decode(msgspec.json.encode(event.data))  # type: ignore[no-any-return]
