"""The controller reads kopf's indices that the startup handler attaches, live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import kopf
import pytest

from kubeserve.controller.handlers import register
from kubeserve.controller.state import CHILD_KINDS, INDEX_IDS, ISVC_INDEX, Controller
from kubeserve.controller.workqueue import Key

KEY = ("ml", "iris")


async def never(_: Controller, __: Key) -> float | None:
    """A reconcile these tests never run."""
    raise AssertionError("no reconcile expected")


def indices() -> dict[str, dict[Key, list[dict[str, Any]]]]:
    """Empty indices under every id the controller reads."""
    return {index_id: {} for index_id in INDEX_IDS}


def test_attached_indices_are_read_live() -> None:
    """Objects that reach an index after attach are seen (kopf fills the same objects)."""
    live = indices()
    controller = Controller(reconcile=never)
    controller.attach(live)
    assert controller.isvc(KEY) is None
    live[ISVC_INDEX][KEY] = [{"metadata": {"name": "iris"}}]
    live[CHILD_KINDS[0].index_id][KEY] = [{"kind": "Deployment"}]
    assert controller.isvc(KEY) == {"metadata": {"name": "iris"}}
    assert controller.children(KEY) == [{"kind": "Deployment"}]
    assert controller.managed_count() == 1


def test_attach_refuses_a_missing_index() -> None:
    """A renamed index fails at startup, not as an operator that never sees objects."""
    partial = indices()
    del partial[CHILD_KINDS[-1].index_id]
    with pytest.raises(KeyError, match=CHILD_KINDS[-1].index_id):
        Controller(reconcile=never).attach(partial)


def test_a_new_start_attaches_the_new_indices() -> None:
    """After a restart of kopf (a new election term) the fresh indices replace the old."""
    first, second = indices(), indices()
    second[ISVC_INDEX][KEY] = [{"metadata": {"name": "iris"}}]
    controller = Controller(reconcile=never)
    controller.attach(first)
    controller.attach(second)
    assert controller.isvc(KEY) is not None


def test_the_registered_startup_handler_attaches_the_indices() -> None:
    """`register` wires the indices explicitly: its startup handler attaches them."""
    registry = kopf.OperatorRegistry()
    controller = Controller(reconcile=never)
    register(registry, controller)
    (startup,) = [h for h in registry._activities.get_all_handlers() if h.id == "attach_indices"]
    live = indices()
    attach: Callable[..., object] = startup.fn  # called as kopf does: indices as kwargs
    result = attach(**live)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    live[ISVC_INDEX][KEY] = [{"metadata": {"name": "iris"}}]
    assert controller.isvc(KEY) is not None
    index_ids = {h.id for h in registry._indexing.get_all_handlers()}
    assert index_ids == set(INDEX_IDS)
