"""The go.mod text work and version stamps that make k8s.io/kubernetes buildable."""

from __future__ import annotations

import pytest

from kubeserve.devcluster import gomod, versions

UPSTREAM = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
\tgithub.com/spf13/cobra v1.10.0
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

require github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc // indirect

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-client => ./staging/src/k8s.io/cri-client
\tgithub.com/example/fork => github.com/example/fork v1.2.3
)

replace k8s.io/kms => ./staging/src/k8s.io/kms
"""


def test_staging_modules_are_the_local_replaces_only() -> None:
    """Block and single-line ./staging replaces are found; other replaces are not."""
    assert gomod.staging_modules(UPSTREAM) == [
        "k8s.io/api",
        "k8s.io/client-go",
        "k8s.io/cri-client",
        "k8s.io/kms",
    ]


def test_go_directive_and_godebug_are_copied() -> None:
    """The wrapper keeps upstream's language version and GODEBUG defaults."""
    assert gomod.go_directive(UPSTREAM) == "1.25.0"
    assert gomod.godebug_settings(UPSTREAM) == ["default=go1.25"]
    block = "module x\n\ngo 1.24\n\ngodebug (\n\tdefault=go1.21\n\tpanicnil=1\n)\n"
    assert gomod.godebug_settings(block) == ["default=go1.21", "panicnil=1"]
    with pytest.raises(ValueError, match="no 'go' directive"):
        gomod.go_directive("module x\n")


def test_required_version_reads_block_and_single_line_requires() -> None:
    """Helm's client-go version is read from its go.mod (block or one-line form)."""
    assert gomod.required_version(UPSTREAM, "github.com/spf13/cobra") == "v1.10.0"
    assert (
        gomod.required_version(UPSTREAM, "github.com/davecgh/go-spew")
        == "v1.1.2-0.20180830191138-d8f796af33cc"
    )
    with pytest.raises(KeyError, match=r"does not require k8s\.io/nope"):
        gomod.required_version(UPSTREAM, "k8s.io/nope")


def test_kubernetes_wrapper_replaces_every_staging_module_with_its_release() -> None:
    """The wrapper go.mod requires kubernetes and pins each staging module to v0.Y.Z."""
    text = gomod.kubernetes_wrapper_gomod(UPSTREAM, "v1.35.4", "v0.35.4")
    assert text.splitlines()[:5] == [
        "module kubeserve.local/kubernetes-wrapper",
        "",
        "go 1.25.0",
        "",
        "godebug default=go1.25",
    ]
    assert "\tk8s.io/kubernetes v1.35.4" in text
    for module in ("k8s.io/api", "k8s.io/client-go", "k8s.io/cri-client", "k8s.io/kms"):
        assert f"\t{module} => {module} v0.35.4" in text
    assert "github.com/example/fork" not in text
    assert "./staging" not in text


def test_staging_version_maps_minor_and_patch() -> None:
    """v1.Y.Z of Kubernetes publishes its staging modules as v0.Y.Z."""
    assert versions.staging_version("v1.35.4") == "v0.35.4"
    assert versions.staging_version("1.33.10") == "v0.33.10"
    with pytest.raises(ValueError, match=r"expected v1\.Y\.Z"):
        versions.staging_version("v2.0.0")


def test_kubernetes_ldflags_stamp_both_version_packages() -> None:
    """Without these stamps the binaries would report v0.0.0-master."""
    flags = gomod.kubernetes_ldflags("v1.35.4")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.35.4" in flags
        assert f"-X {pkg}.gitMajor=1" in flags
        assert f"-X {pkg}.gitMinor=35" in flags
        assert f"-X {pkg}.gitTreeState=clean" in flags
    assert flags.startswith("-s -w ")


def test_helm_ldflags_follow_helms_makefile() -> None:
    """Helm's version and default Kubernetes minor come from its client-go version."""
    flags = gomod.helm_ldflags("v3.19.5", "v0.34.2")
    assert "-X helm.sh/helm/v3/internal/version.version=v3.19.5" in flags
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        assert f"-X {pkg}.k8sVersionMajor=1" in flags
        assert f"-X {pkg}.k8sVersionMinor=34" in flags


def test_tools_go_imports_each_package_blank() -> None:
    """tools.go keeps the command packages in the module graph for `go mod tidy`."""
    text = gomod.tools_go(["k8s.io/kubernetes/cmd/kubectl", "k8s.io/kubernetes/cmd/kube-scheduler"])
    assert text.startswith("//go:build tools\n\npackage tools\n")
    assert '\t_ "k8s.io/kubernetes/cmd/kubectl"\n' in text
    assert '\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n' in text


def test_every_component_has_its_own_cache_key() -> None:
    """Keys embed the version, so a bump never reuses an old build."""
    keys = [item.key for item in versions.ALL_COMPONENTS]
    assert len(set(keys)) == len(keys)
    assert versions.component("kubernetes").key == f"kubernetes-{versions.KUBERNETES}"
    assert versions.component("etcd").files == ("etcd",)
    with pytest.raises(KeyError):
        versions.component("minikube")


def test_node_components_stay_out_of_the_default_build() -> None:
    """A run without a real node never compiles kubelet, kube-proxy or Traefik."""
    default = {item.name for item in versions.COMPONENTS}
    assert {"kubernetes-node", "traefik"}.isdisjoint(default)
    assert versions.component("kubernetes-node").version == versions.KUBERNETES
    assert versions.component("kubernetes-node").files == ("kubelet", "kube-proxy")


def test_prometheus_is_in_the_default_build() -> None:
    """The test suite runs Prometheus and promtool, so `kubeserve cluster build` builds them."""
    assert versions.component("prometheus") in versions.COMPONENTS
    assert versions.component("prometheus").files == ("prometheus", "promtool")
    assert versions.prometheus_release("v0.316.0") == "3.16.0"
    assert versions.prometheus_release("v0.300.1") == "3.0.1"
    with pytest.raises(ValueError, match="unsupported Prometheus module version"):
        versions.prometheus_release("v2.53.0")
