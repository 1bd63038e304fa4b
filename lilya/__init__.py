"""lilya: a WebSocket-first ASGI toolkit.

Import from the module that names the concept: ``from lilya.websockets import
WebSocket``, ``from lilya.routing import WebSocketPath``. This package module only
carries the version so that importing ``lilya`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
