"""heap.settle: a started process's heap is exempt from later garbage collections."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.runtime import heap


class _Node:
    """A container the collector tracks (it could be part of a cycle)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the test runner's heap back to the collector afterwards."""
    yield
    gc.unfreeze()


def _tracked(obj: object) -> bool:
    """Whether the collector's generations (not the permanent one) hold ``obj``."""
    return any(o is obj for o in gc.get_objects())


@pytest.mark.usefixtures("unfrozen")
def test_objects_alive_at_settle_are_left_out_of_collections() -> None:
    before = _Node()
    assert _tracked(before)
    frozen = heap.settle()
    assert frozen == gc.get_freeze_count() > 0
    assert not _tracked(before)
    after = _Node()
    assert _tracked(after)  # what is made later is collected as usual


@pytest.mark.usefixtures("unfrozen")
def test_garbage_cycles_are_collected_before_freezing() -> None:
    """A cycle nobody holds is freed by settle(), not frozen for good."""
    collected: list[bool] = []
    node = _Node()
    probe = weakref.ref(node, lambda _ref: collected.append(True))  # called once freed
    gc.disable()  # so that the collection freeing it is settle's own
    try:
        del node
        assert probe() is not None
        heap.settle()
    finally:
        gc.enable()
    assert probe() is None
    assert collected == [True]
