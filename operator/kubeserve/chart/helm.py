"""Find and run the ``helm`` binary, turning its failures into readable errors.

Lookup order: an explicit path, ``$KUBESERVE_HELM``, the helm that ``kubeserve``'s dev
cluster builds into its cache (pinned version), then ``helm`` on PATH. ``template`` renders;
``install`` installs a release into the cluster a kubeconfig names (real-node tests and
the demo run the operator's pod this way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

RELEASE = "kubeserve"
"""Release name of the default install (and of manifests/)."""

NAMESPACE = "kubeserve-system"
"""Namespace of the default install (and of manifests/)."""


class HelmError(RuntimeError):
    """helm is missing or refused the chart; the message carries helm's own reason."""


def find_helm(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the helm binary to use, or raise HelmError saying how to get one."""
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise HelmError(f"helm binary {explicit} does not exist or is not executable")
        return Path(explicit)
    candidates: list[str | os.PathLike[str] | None] = [os.environ.get("KUBESERVE_HELM")]
    try:
        from kubeserve.devcluster.build import binary

        candidates.append(binary("helm"))
    except (ImportError, KeyError):  # pragma: no cover - devcluster ships with the package
        pass
    candidates.append(shutil.which("helm"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise HelmError(
        "helm not found: build the pinned one with `kubeserve cluster build` (needs Go), "
        "set KUBESERVE_HELM, or put helm 3 on PATH"
    )


def run_helm(helm: Path, args: Sequence[str], cwd: Path | None = None) -> str:
    """Run ``helm ARGS`` and return stdout; raise HelmError with helm's stderr."""
    result = subprocess.run(
        [str(helm), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise HelmError(f"`helm {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def template(
    helm: Path,
    chart: Path,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    values: Mapping[str, str] | None = None,
    values_files: Sequence[Path] = (),
    include_crds: bool = False,
) -> str:
    """Return ``helm template`` output for `chart` with `--set` values and values files."""
    args = ["template", release, str(chart), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for path in values_files:
        args += ["--values", str(path)]
    for key, value in (values or {}).items():
        args += ["--set", f"{key}={value}"]
    return run_helm(helm, args)


def install(
    helm: Path,
    chart: Path,
    kubeconfig: Path,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    values: Mapping[str, str] | None = None,
    skip_crds: bool = False,
) -> str:
    """``helm install`` `chart` into `namespace` (created when missing); return helm's report.

    It does not wait for the operator's pod: callers wait on the condition they need, and
    say what the pod did when it does not come.
    """
    args = ["install", release, str(chart), "--namespace", namespace, "--create-namespace"]
    args += ["--kubeconfig", str(kubeconfig)]
    if skip_crds:
        args.append("--skip-crds")
    for key, value in (values or {}).items():
        args += ["--set", f"{key}={value}"]
    return run_helm(helm, args)


def uninstall(
    helm: Path, kubeconfig: Path, *, release: str = RELEASE, namespace: str = NAMESPACE
) -> str:
    """``helm uninstall`` the release; return helm's report."""
    args = ["uninstall", release, "--namespace", namespace, "--kubeconfig", str(kubeconfig)]
    return run_helm(helm, args)
