"""Build the control plane's binaries from the Go module proxy, once, into a cache.

Every component in :mod:`kubeserve.devcluster.versions` lands in
``~/.cache/kubeserve/bin/<name>-<version>/``. A build writes into a ``.partial`` folder
and renames it into place only when complete, so an interrupted build is never mistaken
for a finished one; a file lock serialises concurrent builders (two test runs, a test run
and ``kubeserve cluster build``). Scratch Go modules live in ``~/.cache/kubeserve/build/``
and the Go module and build caches are Go's own, so a rebuild after a version bump only
compiles what changed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubeserve.devcluster import gomod, versions
from kubeserve.devcluster.versions import Component


class BuildError(RuntimeError):
    """A component could not be built; the message says what is missing or what failed."""


KUBE_PACKAGES = [f"k8s.io/kubernetes/cmd/{name}" for name in versions.KUBE_BINARIES]
NODE_PACKAGES = [f"k8s.io/kubernetes/cmd/{name}" for name in versions.NODE_BINARIES]
TRAEFIK_MODULE = "github.com/traefik/traefik/v3"
ACTIONLINT_MODULE = "github.com/rhysd/actionlint"
PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
PROMETHEUS_TAGS = "remove_all_sd"
"""Compiles only file and HTTP service discovery (plugins/plugin_*.go honour the tag)."""
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
GATEWAY_CRD_DIR = "config/crd/standard"
PROMETHEUS_OPERATOR_CRD_DIR = "example/prometheus-operator-crd"
CERTIFICATE_CRD = "deploy/crds/cert-manager.io_certificates.yaml"


def find_go() -> str:
    """Return the path of the ``go`` tool, or fail naming what is missing."""
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the Go toolchain ('go') is not on PATH; it is needed once to build the local "
            "control plane (Go 1.25 or newer), after which the cached binaries are used"
        )
    return go


def is_built(item: Component) -> bool:
    """Return whether a component's cache folder holds a complete build."""
    folder = versions.bin_dir(item)
    return all((folder / name).exists() for name in item.files)


def missing(components: tuple[Component, ...] = versions.COMPONENTS) -> list[Component]:
    """Return those of ``components`` (default: the control plane's) not built yet."""
    return [item for item in components if not is_built(item)]


class Go:
    """Runs the ``go`` tool with the project's environment and readable failures."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.binary = find_go()
        self.log = log
        self.env = dict(os.environ)
        # The scratch modules resolve their own graph; never let a caller's GOFLAGS
        # (-mod=vendor, -mod=readonly) or a go.work in a parent folder interfere.
        self.env["GOFLAGS"] = "-mod=mod -buildvcs=false"
        self.env["GOWORK"] = "off"

    def run(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
        """Run ``go ARGS`` in ``cwd`` and return stdout; raise BuildError with stderr's tail."""
        result = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-25:])
            raise BuildError(f"`go {' '.join(args)}` failed in {cwd}:\n{tail}")
        return result.stdout

    def download(self, module: str, version: str) -> dict[str, Any]:
        """Fetch ``module@version`` into the module cache and return ``go mod download -json``."""
        args = ["mod", "download", "-json", f"{module}@{version}"]
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, check=False
        )
        info: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
        if result.returncode != 0 or "Error" in info:
            proxy = self.env.get("GOPROXY") or self.run(["env", "GOPROXY"], Path.cwd()).strip()
            reason = info.get("Error") or result.stderr.strip()
            raise BuildError(
                f"cannot fetch {module}@{version} from the Go module proxy "
                f"(GOPROXY={proxy}): {reason}"
            )
        return info


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache while building."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _scratch(item: Component) -> Path:
    """Return a fresh-enough scratch module folder for one component."""
    folder = versions.cache_root() / "build" / item.key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _kubernetes_module(go: Go, version: str) -> Path:
    """Write the scratch wrapper module shared by the control-plane and node builds.

    One folder, one go.mod and one tools.go naming every Kubernetes command either build
    needs: the two builds resolve the same graph, so neither re-tidies after the other
    and the node build compiles only the ~120 packages kubelet and kube-proxy add.
    """
    info = go.download("k8s.io/kubernetes", version)
    upstream = Path(info["GoMod"]).read_text()
    work = _scratch(versions.component("kubernetes"))
    gomod_text = gomod.kubernetes_wrapper_gomod(
        upstream, version, versions.staging_version(version)
    )
    tools = gomod.tools_go(KUBE_PACKAGES + NODE_PACKAGES)
    current = (work / "go.mod").read_text() if (work / "go.mod").exists() else None
    if (
        current != gomod_text
        or not (work / "tools.go").exists()
        or ((work / "tools.go").read_text() != tools)
    ):
        (work / "go.mod").write_text(gomod_text)
        (work / "go.sum").unlink(missing_ok=True)
        (work / "tools.go").write_text(tools)
    if not (work / "go.sum").exists():
        go.log(f"  resolving the k8s.io/kubernetes {version} module graph")
        go.run(["mod", "tidy"], work)
    return work


def _build_kubernetes(go: Go, item: Component, out: Path) -> None:
    """Build kube-apiserver, kube-controller-manager, kube-scheduler and kubectl."""
    work = _kubernetes_module(go, item.version)
    go.log(f"  compiling {', '.join(versions.KUBE_BINARIES)} (minutes when cold)")
    ldflags = gomod.kubernetes_ldflags(item.version)
    go.run(["build", "-trimpath", "-ldflags", ldflags, "-o", f"{out}/", *KUBE_PACKAGES], work)


def _build_kubernetes_node(go: Go, item: Component, out: Path) -> None:
    """Build kubelet and kube-proxy in the control plane's module (shared build cache)."""
    work = _kubernetes_module(go, item.version)
    go.log(f"  compiling {', '.join(versions.NODE_BINARIES)}")
    ldflags = gomod.kubernetes_ldflags(item.version)
    go.run(["build", "-trimpath", "-ldflags", ldflags, "-o", f"{out}/", *NODE_PACKAGES], work)


def _build_traefik(go: Go, item: Component, out: Path) -> None:
    """Build Traefik from a wrapper module that carries Traefik's own replace/exclude lines.

    ``go install traefik@version`` is refused because Traefik's go.mod has replace
    directives; the wrapper module requires it and repeats them (read with
    ``go mod edit -json``, not parsed by hand) so the graph is the one Traefik tests.
    """
    info = go.download(TRAEFIK_MODULE, item.version)
    upstream = json.loads(go.run(["mod", "edit", "-json", info["GoMod"]], Path(info["Dir"])))
    work = _scratch(item)
    replaces = {
        entry["Old"]["Path"]: f"{entry['New']['Path']} {entry['New']['Version']}"
        for entry in upstream.get("Replace") or []
        if entry["New"].get("Version")  # a local-path replace cannot apply outside Traefik
    }
    (work / "go.mod").write_text(
        gomod.wrapper_gomod(
            "kubeserve.local/traefik-wrapper",
            upstream["Go"],
            {TRAEFIK_MODULE: item.version},
            replaces,
        )
    )
    for entry in upstream.get("Exclude") or []:
        go.run(["mod", "edit", f"-exclude={entry['Path']}@{entry['Version']}"], work)
    (work / "go.sum").unlink(missing_ok=True)
    command = f"{TRAEFIK_MODULE}/cmd/traefik"
    (work / "tools.go").write_text(gomod.tools_go([command]))
    go.log(f"  resolving the Traefik {item.version} module graph")
    go.run(["mod", "tidy"], work)
    go.log("  compiling traefik (many minutes when cold)")
    ldflags = f"-s -w -X {TRAEFIK_MODULE}/pkg/version.Version={item.version}"
    go.run(["build", "-trimpath", "-ldflags", ldflags, "-o", str(out / "traefik"), command], work)


def _build_etcd(go: Go, item: Component, out: Path) -> None:
    """Build etcd from a wrapper main that calls etcdmain.Main."""
    info = go.download("go.etcd.io/etcd/server/v3", item.version)
    upstream = Path(info["GoMod"]).read_text()
    work = _scratch(item)
    requires = {"go.etcd.io/etcd/server/v3": item.version}
    (work / "go.mod").write_text(
        gomod.wrapper_gomod("kubeserve.local/etcd-wrapper", gomod.go_directive(upstream), requires)
    )
    (work / "go.sum").unlink(missing_ok=True)
    (work / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    go.run(["mod", "tidy"], work)
    go.run(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."], work)


def _build_kwok(go: Go, item: Component, out: Path) -> None:
    """Install the kwok controller and collect its default node and pod stages."""
    info = go.download("sigs.k8s.io/kwok", item.version)
    env = {"GOBIN": str(out)}
    pkg = f"sigs.k8s.io/kwok/cmd/kwok@{item.version}"
    go.run(["install", "-trimpath", "-ldflags", "-s -w", pkg], _scratch(item), env)
    stages = [(Path(info["Dir"]) / path).read_text().strip() for path in KWOK_STAGES]
    (out / "stages.yaml").write_text("\n---\n".join(stages) + "\n")


def _build_helm(go: Go, item: Component, out: Path) -> None:
    """Install helm with its release version stamps."""
    info = go.download("helm.sh/helm/v3", item.version)
    client_go = gomod.required_version(Path(info["GoMod"]).read_text(), "k8s.io/client-go")
    ldflags = gomod.helm_ldflags(item.version, client_go)
    pkg = f"helm.sh/helm/v3/cmd/helm@{item.version}"
    go.run(["install", "-trimpath", "-ldflags", ldflags, pkg], _scratch(item), {"GOBIN": str(out)})


def _build_toxiproxy(go: Go, item: Component, out: Path) -> None:
    """Install toxiproxy's server as ``toxiproxy-server`` with its version stamped."""
    go.download("github.com/Shopify/toxiproxy/v2", item.version)
    ldflags = f"-s -w -X github.com/Shopify/toxiproxy/v2.Version={item.version}"
    pkg = f"github.com/Shopify/toxiproxy/v2/cmd/server@{item.version}"
    go.run(["install", "-trimpath", "-ldflags", ldflags, pkg], _scratch(item), {"GOBIN": str(out)})
    (out / "server").rename(out / "toxiproxy-server")


def _build_actionlint(go: Go, item: Component, out: Path) -> None:
    """Install actionlint with its version stamped (``actionlint -version`` prints it)."""
    ldflags = f"-s -w -X {ACTIONLINT_MODULE}.version={item.version}"
    pkg = f"{ACTIONLINT_MODULE}/cmd/actionlint@{item.version}"
    go.run(["install", "-trimpath", "-ldflags", ldflags, pkg], _scratch(item), {"GOBIN": str(out)})


def _build_prometheus(go: Go, item: Component, out: Path) -> None:
    """Install prometheus and promtool without the cloud service discoveries or the web UI.

    Prometheus' go.mod has no replace or exclude directive, so ``go install module@version``
    builds the graph Prometheus tests; the version stamps are those of its ``.promu.yml``.
    """
    version_pkg = "github.com/prometheus/common/version"
    ldflags = (
        f"-s -w -X {version_pkg}.Version={versions.PROMETHEUS_RELEASE} "
        f"-X {version_pkg}.Branch=kubeserve -X {version_pkg}.Revision={item.version}"
    )
    packages = [f"{PROMETHEUS_MODULE}/cmd/{name}@{item.version}" for name in item.files]
    go.log("  compiling prometheus and promtool (minutes when cold)")
    go.run(
        ["install", "-trimpath", "-tags", PROMETHEUS_TAGS, "-ldflags", ldflags, *packages],
        _scratch(item),
        {"GOBIN": str(out)},
    )


def _copy_crds(sources: list[Path], out: Path) -> None:
    """Copy CRD YAML files into ``out/crds``."""
    (out / "crds").mkdir()
    for source in sources:
        shutil.copy2(source, out / "crds" / source.name)


def _fetch_gateway_api(go: Go, item: Component, out: Path) -> None:
    """Collect the Gateway API standard-channel CRDs."""
    info = go.download("sigs.k8s.io/gateway-api", item.version)
    _copy_crds(sorted((Path(info["Dir"]) / GATEWAY_CRD_DIR).glob("*.yaml")), out)


def _fetch_prometheus_operator(go: Go, item: Component, out: Path) -> None:
    """Collect the ServiceMonitor and PrometheusRule CRDs."""
    info = go.download("github.com/prometheus-operator/prometheus-operator", item.version)
    folder = Path(info["Dir"]) / PROMETHEUS_OPERATOR_CRD_DIR
    _copy_crds([folder / name for name in versions.PROMETHEUS_OPERATOR_CRDS], out)


def _fetch_cert_manager(go: Go, item: Component, out: Path) -> None:
    """Collect cert-manager's Certificate CRD."""
    info = go.download("github.com/cert-manager/cert-manager", item.version)
    _copy_crds([Path(info["Dir"]) / CERTIFICATE_CRD], out)


BUILDERS: dict[str, Callable[[Go, Component, Path], None]] = {
    "kubernetes": _build_kubernetes,
    "etcd": _build_etcd,
    "kwok": _build_kwok,
    "helm": _build_helm,
    "gateway-api": _fetch_gateway_api,
    "prometheus-operator": _fetch_prometheus_operator,
    "cert-manager": _fetch_cert_manager,
    "toxiproxy": _build_toxiproxy,
    "actionlint": _build_actionlint,
    "prometheus": _build_prometheus,
    "kubernetes-node": _build_kubernetes_node,
    "traefik": _build_traefik,
}


def _stderr(message: str) -> None:
    """Print progress to stderr."""
    print(message, file=sys.stderr, flush=True)


def build(
    log: Callable[[str], None] = _stderr,
    components: tuple[Component, ...] = versions.COMPONENTS,
) -> dict[str, float]:
    """Build every missing one of ``components``; return seconds spent per built key."""
    todo = missing(components)
    if not todo:
        return {}
    go = Go(log)
    timings: dict[str, float] = {}
    with _locked(versions.cache_root()):
        for item in missing(components):  # again: another builder may have finished
            final = versions.bin_dir(item)
            partial = final.with_name(f"{final.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            log(f"building {item.key}")
            started = time.monotonic()
            BUILDERS[item.name](go, item, partial)
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            timings[item.key] = round(time.monotonic() - started, 1)
            log(f"built {item.key} in {timings[item.key]:.0f}s -> {final}")
    return timings


def ensure_built(
    log: Callable[[str], None] = _stderr,
    components: tuple[Component, ...] = versions.COMPONENTS,
) -> None:
    """Build what is missing of ``components`` (fails at once if Go is needed but absent)."""
    if missing(components):
        build(log, components)


def binary(name: str) -> Path:
    """Return the cached path of a built binary (kube-apiserver, etcd, kwok, helm, ...)."""
    for item in versions.ALL_COMPONENTS:
        if name in item.files:
            return versions.bin_dir(item) / name
    raise KeyError(name)


def path_dirs() -> list[Path]:
    """Return the cache folders that hold executables, for PATH."""
    return [versions.bin_dir(item) for item in versions.COMPONENTS if not item.holds_crds]


def crd_files() -> list[Path]:
    """Return the cached third-party CRD YAML files (Gateway API, Prometheus Operator's
    ServiceMonitor and PrometheusRule, cert-manager's Certificate)."""
    files: list[Path] = []
    for item in versions.COMPONENTS:
        if item.holds_crds:
            files += sorted((versions.bin_dir(item) / "crds").glob("*.yaml"))
    return files
