"""Prometheus metrics of the runtime, on an injected CollectorRegistry and their own port.

Nothing registers on prometheus-client's global registry, so several servers (or tests)
in one process never collide.
"""

from kubeserve_runtime.metrics.drift import DriftMonitor, ReferenceProfile, build_profile
from kubeserve_runtime.metrics.registry import RuntimeMetrics
from kubeserve_runtime.metrics.server import MetricsServer

__all__ = ["DriftMonitor", "MetricsServer", "ReferenceProfile", "RuntimeMetrics", "build_profile"]
