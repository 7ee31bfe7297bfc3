"""A local Kubernetes control plane for tests and the demo, built from the Go module proxy.

``versions`` pins every upstream component; ``build`` compiles them once into
``~/.cache/kubeserve/bin/``; ``certs``/``kubeconfig``/``ports``/``processes`` are the
small pieces; ``controlplane`` starts and stops etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK on 127.0.0.1; ``cli`` is
``kubeserve cluster build|up|down|status|env``.
"""
