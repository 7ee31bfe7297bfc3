"""Storage initializer: fetch a model from a URI into a local directory.

``kubeserve-runtime download URI DIR`` runs as the init container of every predictor
pod. It understands ``s3://``, ``gs://``, ``https://`` (and ``http://``), ``pvc://`` and
``file://``. Every download is staged in a hidden directory inside DIR, verified
(``#sha256=`` fragment and/or a ``SHA256SUMS`` file in the source), archives are
unpacked safely, and only then are the entries moved into DIR: a failed or tampered
download leaves no partial model behind.
"""

from kubeserve_runtime.storage.downloader import download
from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions

__all__ = ["DownloadOptions", "StorageError", "download"]
