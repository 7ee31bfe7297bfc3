"""Pure builders: an InferenceService and a TrafficPlan in, Kubernetes objects out.

No API calls, no clock, no randomness: the operator server-side-applies what these
return, ``kubeserve render`` prints it, and golden-file tests pin it.
"""

from kubeserve.builders.children import MissingRevisionError, build_children
from kubeserve.builders.route import RouteUnsupported, url

__all__ = ["MissingRevisionError", "RouteUnsupported", "build_children", "url"]
