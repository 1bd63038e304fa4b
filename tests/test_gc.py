"""``tune_gc``: what start-up allocated is frozen, the young generation is collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from lilya._gc import GC_THRESHOLD, tune_gc


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """Put the collector back as it was: the test process must not stay tuned."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_tune_gc_freezes_what_exists_and_raises_only_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    kept = {"route": ["made at start-up"]}  # alive now, like what start-up made
    tune_gc()
    # Frozen: in no generation any more, so no collection scans it.
    assert not any(found is kept for found in gc.get_objects())
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_tuning_are_still_collected() -> None:
    tune_gc()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
