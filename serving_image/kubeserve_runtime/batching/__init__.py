"""Scheduling inference off the event loop: direct dispatch or adaptive batching.

Both schedulers run the model in a thread pool, bound how many requests may wait
(a full queue raises Overloaded -> 503 + Retry-After) and report timings the metrics
use. ``make_scheduler`` picks the batcher when ``max_batch_size > 1`` and the model
allows batching.
"""

from kubeserve_runtime.batching.batcher import AdaptiveBatcher
from kubeserve_runtime.batching.direct import DirectScheduler
from kubeserve_runtime.batching.types import BatchObserver, Runner, Scheduler, Timing

__all__ = [
    "AdaptiveBatcher",
    "BatchObserver",
    "DirectScheduler",
    "Runner",
    "Scheduler",
    "Timing",
]
