"""manifests/ is the kustomize twin of `helm template` with default values, and stays fresh."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.chart.commands import expected_files
from kubeserve.chart.helm import run_helm
from kubeserve.chart.manifests import (
    KUSTOMIZATION,
    namespace_object,
    render_base,
    split_documents,
    stale_files,
    write_base,
)
from kubeserve.cli import main

CHART_FILES = (
    "Chart.yaml",
    "values.yaml",
    "values.schema.json",
    ".helmignore",
    "templates",
    "crds",
    "dashboards",
)


def identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    """Sort key of an object: kind, namespace, name."""
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def test_committed_manifests_are_fresh(chart: Path, helm_binary: Path) -> None:
    """manifests/ equals a fresh render of the chart (run `kubeserve manifests` when this fails)."""
    stale = stale_files(chart / "manifests", expected_files(chart, str(helm_binary)))
    assert stale == [], f"stale files in manifests/: {stale}; run `kubeserve manifests`"


def test_kustomize_builds_the_base_unchanged(chart: Path, kubectl_binary: Path) -> None:
    """`kubectl kustomize manifests/` yields every generated object, untransformed."""
    built = subprocess.run(
        [str(kubectl_binary), "kustomize", str(chart / "manifests")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from_kustomize = sorted((obj for obj in yaml.safe_load_all(built) if obj), key=identity)
    files = yaml.safe_load((chart / "manifests" / KUSTOMIZATION).read_text())["resources"]
    committed = [yaml.safe_load((chart / "manifests" / name).read_text()) for name in files]
    assert from_kustomize == sorted(committed, key=identity)
    assert namespace_object() in from_kustomize
    kinds = {obj["kind"] for obj in from_kustomize}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "ConfigMap"} <= kinds


def test_render_base_keeps_helm_text_one_file_per_object() -> None:
    """Documents split on `---`, keep their comments, and are listed in the kustomization."""
    rendered = (
        "---\n# Source: kubeserve/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\n"
        "metadata:\n  name: op\n  namespace: ns\n---\n# only a comment\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: op-metrics  # why\n"
    )
    files = render_base(rendered, "ns")
    assert list(files) == [
        "namespace-ns.yaml",
        "serviceaccount-op.yaml",
        "service-op-metrics.yaml",
        KUSTOMIZATION,
    ]
    assert "# Source: kubeserve/templates/sa.yaml\n" in files["serviceaccount-op.yaml"]
    assert files["service-op-metrics.yaml"].endswith("name: op-metrics  # why\n")
    kustomization = yaml.safe_load(files[KUSTOMIZATION])
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == list(files)[:-1]
    assert yaml.safe_load(files["namespace-ns.yaml"])["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"
    ] == ("restricted")


def test_render_base_refuses_non_objects_and_clashing_names() -> None:
    """Garbage and two objects for one file name are errors, not silent overwrites."""
    with pytest.raises(ValueError, match="not a Kubernetes object"):
        split_documents("just: a map\n")
    twice = "kind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: a}\n"
    with pytest.raises(ValueError, match=r"configmap-a\.yaml"):
        render_base(twice)


def test_write_base_replaces_changed_and_removes_extra_files(tmp_path: Path) -> None:
    """Writing reports what changed; an object no longer rendered loses its file."""
    (tmp_path / "old-object.yaml").write_text("kind: Old\n")
    (tmp_path / "README.md").write_text("kept\n")
    files = {"a.yaml": "kind: A\n", KUSTOMIZATION: "resources: [a.yaml]\n"}
    assert write_base(tmp_path, files) == ["a.yaml", KUSTOMIZATION, "old-object.yaml"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "README.md",
        "a.yaml",
        KUSTOMIZATION,
    ]
    assert write_base(tmp_path, files) == []
    (tmp_path / "a.yaml").write_text("kind: Edited\n")
    assert stale_files(tmp_path, files) == ["a.yaml"]


def test_cli_checks_then_writes(
    tmp_path: Path, chart: Path, helm_binary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubeserve manifests --check` exits 1 on a stale tree; writing makes it pass."""
    for name in CHART_FILES:
        source = chart / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy2(source, tmp_path / name)
    args = ["manifests", "--root", str(tmp_path), "--helm", str(helm_binary)]
    assert main([*args, "--check"]) == 1
    assert "stale:" in capsys.readouterr().err
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    assert sorted(path.name for path in (tmp_path / "manifests").iterdir()) == sorted(
        path.name for path in (chart / "manifests").iterdir()
    )
    assert (
        main(["manifests", "--root", str(tmp_path / "manifests"), "--helm", str(helm_binary)]) == 2
    )
    assert "has no Chart.yaml" in capsys.readouterr().err
    assert main([*args, "--helm", str(tmp_path / "no-helm")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_package_holds_only_chart_files(chart: Path, helm_binary: Path, tmp_path: Path) -> None:
    """.helmignore keeps the Python tree, tests and manifests/ out of the chart package."""
    run_helm(helm_binary, ["package", str(chart), "--destination", str(tmp_path)])
    (package,) = tmp_path.glob("kubeserve-*.tgz")
    with tarfile.open(package) as archive:
        names = sorted(name.split("/", 1)[1] for name in archive.getnames())
    allowed_top = {
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "templates",
        "crds",
        "dashboards",
    }
    assert {name.split("/", 1)[0] for name in names} == allowed_top
    templates = sorted(f"templates/{path.name}" for path in (chart / "templates").iterdir())
    assert [name for name in names if name.startswith("templates/")] == templates
    assert [name for name in names if name.startswith("crds/")] == [
        "crds/serving.kubeserve.io_inferenceservices.yaml"
    ]
    assert [name for name in names if name.startswith("dashboards/")] == [
        "dashboards/kubeserve.json"
    ]
