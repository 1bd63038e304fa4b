"""How ``lilya run`` runs uvicorn: the app drains before uvicorn stops, and a stop exits 0.

Theory of operation
-------------------
On SIGTERM or SIGINT uvicorn (0.54) closes every WebSocket at once with 1012,
waits for the handlers, and only then sends the app ``lifespan.shutdown``: too
late for the app's drain (:mod:`lilya._drain`), which must refuse handshakes
and close sockets in batches while the server still listens. And after a
SIGTERM it re-raises the signal on itself once it is done, so a process with
one worker ends with status -15, which process managers report as a crash.

:class:`DrainingServer` is uvicorn's ``Server`` with two changes: its
``shutdown`` first drains every lilya app it serves (found by following the
``.app`` of uvicorn's wrapping middleware), while the listening socket is still
open, then lets uvicorn close what is left; and it does not re-raise the
signal, so a stop it was asked for exits 0. A second Ctrl+C still forces the
exit, as in uvicorn. With ``--workers N`` each worker process runs one
(:class:`_Multiprocess` makes uvicorn's supervisor start them), and the
supervisor, which forwards the signal to every worker and waits for them,
exits 0 too. ``--reload`` stays plain ``uvicorn.run``: it is for development.

Once started, a :class:`DrainingServer` with ``gc_tuning`` (``lilya run``'s
default) tunes the garbage collector of its process (:mod:`lilya._gc`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

from lilya._gc import tune_gc
from lilya.apps import Lilya

__all__ = ["DrainingServer", "lilya_apps", "run"]


def lilya_apps(app: Any) -> Iterator[Lilya]:
    """The lilya apps under *app*, following the ``.app`` of wrapping middleware."""
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        if isinstance(app, Lilya):
            yield app
        app = getattr(app, "app", None)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining lilya apps before it stops and exiting 0 after a signal.

    With *gc_tuning* it also tunes the garbage collector once it has started
    (:func:`tune_gc`).
    """

    def __init__(self, config: uvicorn.Config, gc_tuning: bool = False) -> None:
        super().__init__(config)
        self.gc_tuning = gc_tuning

    async def startup(self, sockets: Any = None) -> None:
        """Start as uvicorn does (the lifespan, then listening), then tune the collector."""
        await super().startup(sockets)
        if self.gc_tuning:
            tune_gc()

    async def shutdown(self, sockets: Any = None) -> None:
        """Drain the lilya apps served (while still listening), then stop as uvicorn does."""
        if not self.force_exit:
            for app in lilya_apps(self.config.loaded_app):
                await app.drain()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Catch the signals as uvicorn does, without raising them again at the end."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


class _Process(multiprocess.Process):
    """A worker process that runs a :class:`DrainingServer`."""

    gc_tuning = False

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(self.config, self.gc_tuning)
        return self._server


class _Multiprocess(multiprocess.Multiprocess):
    """uvicorn's supervisor, starting workers that drain."""

    gc_tuning = False

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = _Process(self.config, self.sockets)
            process.gc_tuning = self.gc_tuning
            process.start()
            self.processes.append(process)


def run(app: Any, *, gc_tuning: bool = False, **options: Any) -> None:
    """Serve *app* as ``uvicorn.run(app, **options)`` does, with draining servers.

    *gc_tuning* tunes the collector in each worker once it has started
    (:func:`tune_gc`; not with ``reload``, which is for development). An app
    that fails to start exits with uvicorn's status (3), as there.
    """
    if options.get("reload"):
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, **options)
    if config.workers > 1:
        supervisor = _Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.gc_tuning = gc_tuning
        supervisor.run()
        return
    server = DrainingServer(config, gc_tuning)
    # A SIGINT before uvicorn catches signals (or a second, forcing one) is a stop too.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
