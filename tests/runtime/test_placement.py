"""Placement: which model calls run inline on the event loop, from measured durations
and sizes (values, not rows). The schedulers using it are tested in test_batching.py."""

from __future__ import annotations

from kubeserve_runtime.batching.placement import Placement


def test_calls_run_in_the_pool_until_warmed_up() -> None:
    """Before ``warmup_calls`` measurements nothing is known, so nothing runs inline."""
    placement = Placement(0.001, warmup_calls=3)
    for _ in range(2):
        assert not placement.inline(1)
        placement.observe(1, 0.00001)
    assert not placement.inline(1)
    placement.observe(1, 0.00001)
    assert placement.inline(1)


def test_expensive_calls_stay_in_the_pool() -> None:
    """A model measured above the limit never runs on the loop."""
    placement = Placement(0.0005, warmup_calls=2)
    for _ in range(10):
        placement.observe(1, 0.002)
    assert not placement.inline(1)


def test_one_slow_call_sends_the_next_to_the_pool_and_fast_calls_bring_it_back() -> None:
    """A slow call replaces the mean at once; fast calls pull it down gradually."""
    placement = Placement(0.0005, warmup_calls=1, alpha=0.5)
    placement.observe(1, 0.0001)
    assert placement.inline(1)
    placement.observe(1, 0.004)
    assert not placement.inline(1)
    fast_calls = 0
    while not placement.inline(1):
        placement.observe(1, 0.0001)
        fast_calls += 1
    assert 1 < fast_calls < 10


def test_estimates_scale_with_elements() -> None:
    """A call on many more values than usual is expected to take longer."""
    placement = Placement(0.0005, warmup_calls=1)
    placement.observe(4, 0.0001)
    assert placement.estimate(4) == 0.0001
    assert placement.estimate(400) == 0.0001 * 100
    assert placement.inline(16)
    assert not placement.inline(400)


def test_empty_calls_do_not_make_every_estimate_huge() -> None:
    """Calls on zero values keep the mean size at one value at least."""
    placement = Placement(0.0005, warmup_calls=1)
    for _ in range(50):
        placement.observe(0, 0.00001)
    assert placement.inline(1)


def test_zero_limit_never_inlines() -> None:
    """``inline_max_s`` 0 keeps every call in the pool."""
    placement = Placement(0.0, warmup_calls=1)
    placement.observe(1, 0.0)
    assert not placement.inline(1)
