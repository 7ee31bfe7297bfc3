"""kubeserve_runtime: the serving runtime shipped in the kubeserve serving image.

It never imports kopf or the Kubernetes client: the image carries only what it needs to
load a model and answer predictions.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kubeserve")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = ["__version__"]
