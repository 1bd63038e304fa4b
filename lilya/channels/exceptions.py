"""The ways a channel operation can fail, one class per kind.

Each subclasses the builtin it resembles, so code that already catches
``ConnectionError`` or ``RuntimeError`` keeps working, and carries the fields a
test or a log line needs.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ChannelsError",
    "NotConnectedError",
    "PublishOutcomeUnknownError",
    "SubscriberOverflowError",
]


class ChannelsError(Exception):
    """Base class of every error raised by :mod:`lilya.channels`."""


class BackendUnavailableError(ChannelsError, ConnectionError):
    """The backend (Redis) cannot be reached, so the operation did not happen.

    A publish that raises this was *not* delivered to anyone: retry it, tell
    the client, or drop it knowingly. Nothing is dropped silently.

    Attributes:
        url: the backend URL with any password masked.
        operation: what was attempted (``"publish"``, ``"history"``, …).
    """

    def __init__(self, url: str, operation: str, cause: BaseException | None = None) -> None:
        detail = f": {cause}" if cause is not None else ""
        super().__init__(f"Cannot {operation}: channel backend {url} is unavailable{detail}")
        self.url = url
        self.operation = operation


class PublishOutcomeUnknownError(ChannelsError, TimeoutError):
    """A publish reached the backend but its answer did not come back: it may have happened.

    The command was written to Redis, then the connection timed out or broke
    before the reply. Redis may have run it (subscribers got the message) or
    not. Unlike :class:`BackendUnavailableError` (*not* sent), retrying blindly
    could deliver it twice: retry with the same ``message_id`` (publish
    deduplicates within the history window), or tell the user you do not know.

    Attributes:
        url: the backend URL with any password masked.
        channel: the channel published to.
        message_id: the id you gave, or ``None``.
    """

    def __init__(
        self, url: str, channel: str, message_id: str | None, cause: BaseException
    ) -> None:
        advice = (
            "retry with the same message_id; it is delivered once"
            if message_id is not None
            else "pass message_id= to publish so that a retry is safe"
        )
        super().__init__(
            f"Publish to {channel!r} may or may not have happened: channel backend {url} "
            f"took the command but its reply was lost ({cause}); {advice}."
        )
        self.url = url
        self.channel = channel
        self.message_id = message_id


class BackendError(ChannelsError):
    """The backend refused an operation it was sent (a Redis error reply).

    lilya validates every argument before it reaches a backend, so this means
    the store itself is in a state lilya did not make: a key of another type
    under the channels' ``key_prefix``, a read-only replica, memory full. The
    operation did not happen.

    Attributes:
        url: the backend URL with any password masked.
        operation: what was attempted.
    """

    def __init__(self, url: str, operation: str, cause: BaseException) -> None:
        super().__init__(f"Cannot {operation}: channel backend {url} refused it: {cause}")
        self.url = url
        self.operation = operation


class NotConnectedError(ChannelsError, RuntimeError):
    """You used :class:`~lilya.channels.Channels` before ``connect()`` or after ``disconnect()``.

    Pass ``lifespan=channels.lifespan`` to your app, or ``await
    channels.connect()`` at startup.
    """


class SubscriberOverflowError(ChannelsError):
    """A subscription with policy ``"close"`` fell ``max_queue`` events behind.

    It is raised by the iteration of that subscription; the subscription no
    longer receives events. Resubscribe with ``since=`` the last position you
    handled to catch up from history.

    Attributes:
        channel: the channel's name.
        max_queue: the queue bound that was exceeded.
        dropped: how many events were discarded when the subscription closed.
    """

    def __init__(self, channel: str, max_queue: int, dropped: int) -> None:
        super().__init__(
            f"Subscriber of {channel!r} fell more than {max_queue} events behind and was "
            f"closed ({dropped} events discarded); resubscribe with since= to catch up."
        )
        self.channel = channel
        self.max_queue = max_queue
        self.dropped = dropped
