"""The one place that pins every upstream component of the local control plane.

Each component is a Go module fetched through the Go module proxy and built here; a
bump is a one-line edit of this file. Built artifacts are cached under
``~/.cache/kubeserve/bin/<key>/`` where ``<key>`` is ``<component>-<version>``, so a new
version builds into a new folder and an old cache is never mistaken for the new one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KUBERNETES = "v1.35.4"
"""k8s.io/kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl."""

ETCD = "v3.6.16"
"""go.etcd.io/etcd/server/v3, wrapped by a two-line main calling etcdmain.Main."""

KWOK = "v0.8.0"
"""sigs.k8s.io/kwok: simulates kubelets for the fake node (pods become Running/Ready)."""

HELM = "v3.19.5"
"""helm.sh/helm/v3: lints, templates and installs the chart in tests and the demo."""

GATEWAY_API = "v1.4.1"
"""sigs.k8s.io/gateway-api: the standard-channel CRDs (HTTPRoute and friends)."""

PROMETHEUS_OPERATOR = "v0.85.0"
"""github.com/prometheus-operator/prometheus-operator: the ServiceMonitor and PrometheusRule
CRDs (the chart's optional objects, dry-run against the real API server)."""

PROMETHEUS_OPERATOR_CRDS = (
    "monitoring.coreos.com_servicemonitors.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
)

CERT_MANAGER = "v1.21.2"
"""github.com/cert-manager/cert-manager: the Certificate CRD (spec.tls.certManager children
are applied against its schema; no cert-manager controller runs)."""

TRAEFIK = "v3.6.12"
"""github.com/traefik/traefik/v3: the Gateway API implementation of the real node (no Envoy).

Pinned to the 3.6 line because its sigs.k8s.io/gateway-api is v1.4.0, the API the
GATEWAY_API CRDs below serve; Traefik 3.7 moved to gateway-api v1.6."""

TOXIPROXY = "v2.12.0"
"""github.com/Shopify/toxiproxy/v2: the TCP fault proxy of the fault tests.

Pinned by hand: the module proxy's ``@latest`` still answers v2.5.0 (2022)."""

ACTIONLINT = "v1.7.12"
"""github.com/rhysd/actionlint: lints the release workflow (.github/workflows/), which
cannot run here. In the default build because it is small: 92 s cold (empty module and
build caches, 2 shared cores)."""

PROMETHEUS = "v0.316.0"
"""github.com/prometheus/prometheus: Prometheus 3.16.0 and promtool (the module numbers
Prometheus 3.Y.Z as v0.3YY.Z; the module's VERSION file says 3.16.0). The tests scrape
real runtime processes with it and check the chart's rules with ``promtool``. Built
with ``-tags remove_all_sd`` (only file and HTTP service discovery, no cloud SDKs) and
without ``builtinassets`` (no web UI); the HTTP API and ``/-/ready`` are all tests use.
In the default build because the test suite runs it: 6m53s wall, 263 CPU-seconds, with
empty module and build caches on 2 cores shared with other builds (promtool imports the
Kubernetes discovery unconditionally, so client-go is compiled all the same)."""


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """Return the published staging-module version (v0.Y.Z) of a Kubernetes v1.Y.Z."""
    major, minor, patch = kubernetes.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unsupported Kubernetes version {kubernetes!r}: expected v1.Y.Z")
    return f"v0.{minor}.{patch}"


def prometheus_release(module_version: str = PROMETHEUS) -> str:
    """Return the Prometheus release (X.Y.Z) the Go module version v0.XYY.Z numbers."""
    major, combined, patch = module_version.lstrip("v").split(".")
    if major != "0" or len(combined) < 3:
        raise ValueError(f"unsupported Prometheus module version {module_version!r}")
    return f"{int(combined) // 100}.{int(combined) % 100}.{patch}"


PROMETHEUS_RELEASE = prometheus_release()
"""The release stamped into ``prometheus --version`` (3.16.0 for v0.316.0)."""


@dataclass(frozen=True)
class Component:
    """One cached build: a folder key and the files a complete build leaves in it."""

    name: str
    version: str
    files: tuple[str, ...]

    @property
    def holds_crds(self) -> bool:
        """Whether this component is CRD YAML (under ``crds/``), not executables."""
        return all(name == "crds" or name.startswith("crds/") for name in self.files)

    @property
    def key(self) -> str:
        """Return the cache folder name, e.g. ``kubernetes-v1.35.4``."""
        return f"{self.name}-{self.version}"


KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_BINARIES = ("kubelet", "kube-proxy")

COMPONENTS: tuple[Component, ...] = (
    Component("kubernetes", KUBERNETES, KUBE_BINARIES),
    Component("etcd", ETCD, ("etcd",)),
    Component("kwok", KWOK, ("kwok", "stages.yaml")),
    Component("helm", HELM, ("helm",)),
    Component("gateway-api", GATEWAY_API, ("crds",)),
    Component(
        "prometheus-operator",
        PROMETHEUS_OPERATOR,
        tuple(f"crds/{name}" for name in PROMETHEUS_OPERATOR_CRDS),
    ),
    Component("cert-manager", CERT_MANAGER, ("crds",)),
    Component("toxiproxy", TOXIPROXY, ("toxiproxy-server",)),
    Component("actionlint", ACTIONLINT, ("actionlint",)),
    Component("prometheus", PROMETHEUS, ("prometheus", "promtool")),
)
"""Built by ``kubeserve cluster build`` and every test session: the KWOK control plane."""

NODE_COMPONENTS: tuple[Component, ...] = (
    Component("kubernetes-node", KUBERNETES, NODE_BINARIES),
    Component("traefik", TRAEFIK, ("traefik",)),
)
"""Built only by ``kubeserve cluster build --real-node``: a real kubelet node and its Gateway.

Apart from COMPONENTS so that a developer or CI run without a real node never pays for
them (kubelet and kube-proxy add minutes to a cold build, Traefik far more)."""

ALL_COMPONENTS = COMPONENTS + NODE_COMPONENTS


def component(name: str) -> Component:
    """Return the pinned component called ``name``."""
    for item in ALL_COMPONENTS:
        if item.name == name:
            return item
    raise KeyError(name)


def cache_root() -> Path:
    """Return ``$KUBESERVE_CACHE_DIR`` or ``~/.cache/kubeserve``."""
    env = os.environ.get("KUBESERVE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kubeserve"


def bin_dir(item: Component) -> Path:
    """Return the cache folder holding one component's build."""
    return cache_root() / "bin" / item.key
