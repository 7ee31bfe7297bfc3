"""Conversion of other projects' manifests into kubeserve's: ``kubeserve convert``.

``kserve`` turns a ``serving.kserve.io/v1beta1`` InferenceService into a kubeserve one;
``ledger`` records, for every field of the input, where it went or why it could not go
anywhere, so that nothing is ever dropped without a word; ``commands`` is the CLI.
"""
