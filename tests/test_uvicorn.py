"""``lilya run``'s uvicorn server, in process: it drains first and does not re-raise the signal.

The subprocess tests (``test_drain_server.py``) measure the drain on a real
``lilya run``; here the same server runs in the test process, so a SIGTERM
that uvicorn re-raised would end the test run itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lilya import _uvicorn
from lilya.apps import Lilya
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket
from tests.support.servers import free_port


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


def test_lilya_apps_are_found_under_wrapping_middleware() -> None:
    app = Lilya()
    wrapped = TrustedHostMiddleware(app, allowed_hosts=["*"])
    assert list(_uvicorn.lilya_apps(wrapped)) == [app]
    assert list(_uvicorn.lilya_apps(echo)) == []


@pytest.mark.server
def test_sigterm_drains_the_app_closes_its_sockets_1012_and_returns_normally() -> None:
    app = Lilya(routes=[WebSocketPath("/", echo)])
    port = free_port()
    codes: list[int | None] = []

    def client() -> None:
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "uvicorn did not start listening"
                    time.sleep(0.05)
            with connect(f"ws://127.0.0.1:{port}/", open_timeout=30) as ws:
                ws.send("hi")
                assert ws.recv(timeout=10) == "hi"
                os.kill(os.getpid(), signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
                codes.append(ws.close_code)
        finally:
            if not codes:  # pragma: no cover  # the test failed: stop the server anyway
                os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=client)
    thread.start()
    _uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="wsproto")
    thread.join(10)
    assert codes == [1012]


def test_reload_is_plain_uvicorn_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    _uvicorn.run("main:app", reload=True, port=1)
    assert calls == [("main:app", {"reload": True, "port": 1})]


def test_workers_run_under_a_supervisor_whose_workers_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[_uvicorn._Process] = []
    monkeypatch.setattr(_uvicorn._Process, "start", lambda self: started.append(self))
    monkeypatch.setattr(_uvicorn._Multiprocess, "run", lambda self: self.init_processes())
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _uvicorn.run("tests.support.cli_apps:app", workers=2, port=free_port(), gc_tuning=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert len(started) == 2
    assert all(isinstance(process.server, _uvicorn.DrainingServer) for process in started)
    assert all(process.server.gc_tuning for process in started)  # type: ignore[attr-defined]
    assert started[0].server is started[0].server


def test_a_forced_stop_skips_the_drain() -> None:
    app = Lilya()
    server = _uvicorn.DrainingServer(uvicorn.Config(app))
    server.servers = []
    server.force_exit = True  # a second Ctrl+C
    asyncio.run(server.shutdown())
    assert not app.draining


@pytest.mark.parametrize("tuning", [True, False])
def test_the_collector_is_tuned_after_uvicorns_startup_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, tuning: bool
) -> None:
    steps: list[str] = []

    async def started(self: uvicorn.Server, sockets: Any = None) -> None:
        steps.append("uvicorn started")

    monkeypatch.setattr(uvicorn.Server, "startup", started)
    monkeypatch.setattr(_uvicorn, "tune_gc", lambda: steps.append("tuned"))
    server = _uvicorn.DrainingServer(uvicorn.Config(Lilya()), gc_tuning=tuning)
    asyncio.run(server.startup())
    assert steps == (["uvicorn started", "tuned"] if tuning else ["uvicorn started"])
