"""Garbage-collector settings for a long-lived WebSocket server (``lilya run``).

Theory of operation
-------------------
A WebSocket server is long-lived and holds many live objects per open socket
(its coroutine frames, the server's protocol, the subscription). CPython's
cyclic collector scans the objects of a generation every time it collects
it: every 700 net allocations it scans the young ones, and a full collection
walks every tracked object in the process, the sockets' and everything
start-up made (modules, the app, its routes). A handshake allocates a few
hundred objects, so at thousands of sockets the process spends a large part
of its time scanning objects that are not garbage (docs/benchmarks.md).

So once start-up is done (the lifespan has started, the socket listens),
``lilya run`` calls :func:`tune_gc` in each worker process (turn it off with
``--no-gc-tuning`` or ``LILYA_GC_TUNING=0``), which does two things:
:func:`gc.freeze` moves what start-up allocated out of every future
collection, and the young generation's threshold is raised from
700 to :data:`GC_THRESHOLD` allocations, so the young collections come 70
times less often. Older generations keep their ratios (a full collection
still comes after 100 young ones), so cyclic garbage is still found, later.
Nothing changes on import: only ``lilya run`` calls it
(:class:`lilya._uvicorn.DrainingServer` with ``gc_tuning=True``).
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GC_THRESHOLD", "tune_gc"]

#: The young generation's collection threshold ``lilya run`` sets (CPython's is 700).
GC_THRESHOLD: Final = 50_000


def tune_gc() -> None:
    """Freeze what start-up allocated and raise the young generation's threshold.

    The older generations keep their thresholds: a full collection still comes
    after as many young ones as before, so cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)
