"""Model formats behind one small interface (see ``base.Model``).

``load_model(settings)`` picks the format (explicit or detected from the directory),
imports its library lazily (a missing extra names the ``pip install`` to run) and loads.
"""

from kubeserve_runtime.models.base import Model
from kubeserve_runtime.models.loader import detect_format, load_model

__all__ = ["Model", "detect_format", "load_model"]
