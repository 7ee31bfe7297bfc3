"""kubeserve: the InferenceService operator and its command line.

The operator package is importable as ``kubeserve``; it lives under ``operator/`` in the
repository, which is deliberately *not* a package itself (an ``operator/__init__.py``
would shadow the standard library module ``operator``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kubeserve")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = ["__version__"]
