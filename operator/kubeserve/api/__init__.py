"""The InferenceService API (v1alpha1): models, CRD generation and API reference.

Import the models from :mod:`kubeserve.api.v1alpha1`; this package's ``__init__`` stays
empty so that registering the ``kubeserve crds`` subcommand imports nothing heavy.
"""
