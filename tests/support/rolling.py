"""What the rolling-restart tests share: ``lilya run`` workers, started and restarted off the loop.

A rolling restart, as an orchestrator does it: SIGTERM to one worker, which
drains (1012 to its sockets, 503 to new handshakes) and exits 0; then the same
worker started again on the same port. The clients' job is to come back through
whatever spreads them over the workers (a dialer that round-robins, or
:class:`tests.support.balancer.Balancer`) and resume without a loss.

The servers start in a worker thread (``serve`` waits for the port to listen),
so the event loop keeps running the clients that are under test meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import sys

import anyio.to_thread

from tests.support.servers import RunningServer, serve

__all__ = ["lilya_run", "restart", "start"]

#: Seconds a draining worker may take to exit (its drain_timeout is 30, but a
#: handful of sockets drain in well under a second).
EXIT_TIMEOUT = 20.0


def lilya_run(app: str, port: int | str = "{port}") -> list[str]:
    """The command line of ``python -m lilya run APP --port PORT`` (``{port}``: serve's)."""
    return [sys.executable, "-m", "lilya", "run", app, "--port", str(port)]


async def start(
    stack: contextlib.ExitStack, app: str, port: int, env: dict[str, str]
) -> RunningServer:
    """Start ``lilya run APP`` on *port*; it is stopped when *stack* closes."""

    def run() -> RunningServer:
        return stack.enter_context(
            serve(app, "lilya-run", command=lilya_run(app, port), env=env, port=port)
        )

    return await anyio.to_thread.run_sync(run)


async def restart(
    server: RunningServer,
    stack: contextlib.ExitStack,
    app: str,
    env: dict[str, str],
) -> tuple[str, RunningServer]:
    """SIGTERM *server*, check that it drained and exited 0, start it again on its port.

    Returns the stopped worker's log (read before its log file goes) and the
    new worker, which *stack* stops.
    """
    server.process.send_signal(signal.SIGTERM)
    code = await anyio.to_thread.run_sync(server.process.wait, EXIT_TIMEOUT)
    log = server.log()
    assert code == 0, f"the drained worker exited {code}:\n{log}"
    return log, await start(stack, app, server.port, env)
