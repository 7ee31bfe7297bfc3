"""The Helm chart (the repository root) seen from Python: run helm, derive manifests/.

The chart is the one source of the operator's install. :mod:`.helm` runs the helm
binary (built from the Go module proxy by :mod:`kubeserve.devcluster`, or any helm on
PATH); :mod:`.manifests` turns ``helm template`` with default values into the plain
kustomize base under ``manifests/`` so kubectl and GitOps users install exactly what Helm
users install; :mod:`.commands` is the ``kubeserve manifests`` subcommand.
"""
