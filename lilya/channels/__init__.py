"""Broadcast channels: publish/subscribe with history, recovery and presence.

``Channels("memory://")`` works within one process; ``Channels("redis://…")``,
``Channels("postgres://…")`` and ``Channels("nats://…")`` across processes and hosts, with the same
behaviour (one contract, :class:`Backend`, and one suite,
:mod:`lilya.channels.testing`). See ``docs/channels.md``.
"""

from lilya.channels.backend import (
    Backend,
    BackendSettings,
    HistoryPage,
    Sink,
    check_position,
    register_backend,
)
from lilya.channels.channels import Channels
from lilya.channels.events import Event, EventType, Position
from lilya.channels.exceptions import (
    BackendError,
    BackendUnavailableError,
    ChannelsError,
    NotConnectedError,
    PublishOutcomeUnknownError,
    SubscriberOverflowError,
)
from lilya.channels.subscription import Policy, Subscription
from lilya.channels.websocket import default_encode, relay

__all__ = [
    "Backend",
    "BackendError",
    "BackendSettings",
    "BackendUnavailableError",
    "Channels",
    "ChannelsError",
    "Event",
    "EventType",
    "HistoryPage",
    "NotConnectedError",
    "Policy",
    "Position",
    "PublishOutcomeUnknownError",
    "Sink",
    "SubscriberOverflowError",
    "Subscription",
    "check_position",
    "default_encode",
    "register_backend",
    "relay",
]
