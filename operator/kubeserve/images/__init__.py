"""Container images built without Docker or a registry, for a real kubelet on this machine.

``archive`` writes OCI image-layout tars; ``store`` is the content-keyed cache under
``~/.cache/kubeserve/images/``; ``pause`` compiles the sandbox image from the Kubernetes
module's own ``pause.c``; ``recipe`` reads an image definition from the project's
Dockerfiles; ``rootfs`` and ``chroot`` build the Debian base and the Python layers;
``catalog`` names the three images and builds them; ``containerd`` imports archives;
``commands`` is ``kubeserve image build|import``.
"""
