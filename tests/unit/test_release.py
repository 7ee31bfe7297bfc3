"""The release workflow: linted by actionlint, and every step that can run here is run.

The workflow only runs on GitHub (image builds for two platforms, pushes, the release),
so this file (1) lints it with the pinned actionlint, (2) runs each `run:` step, job by
job, as the runner would (bash -eo pipefail, the step's env with its `${{ }}` values
resolved from earlier steps' $GITHUB_OUTPUT), skipping only the steps that talk to
GitHub or the registry (NETWORK_STEPS says which and why), then checks what they
produced with the real helm and kubectl, and (3) tests the pure functions behind them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve import release
from kubeserve.devcluster import build, versions

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
CHART = yaml.safe_load((ROOT / "Chart.yaml").read_text())
VERSION = str(CHART["appVersion"])
DIGESTS = {"operator": "sha256:" + "a" * 64, "runtime": "sha256:" + "b" * 64}

NETWORK_STEPS = {
    "Install kubeserve (no extras)": "installs into the runner's Python (here: the test's venv; "
    "test_release_needs_no_extra checks that no extra is needed)",
    "Log in to the registry (helm)": "logs in to the registry",
    "Push the chart": "pushes to the registry",
    "Create the GitHub release": "needs GitHub",
}
"""run: steps not executed here, with the reason."""

USES_OUTPUTS = {
    "steps.operator.outputs.digest": DIGESTS["operator"],
    "steps.runtime.outputs.digest": DIGESTS["runtime"],
}
"""Outputs of `uses:` steps (docker/build-push-action) that cannot run here."""

EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


@pytest.fixture(scope="module")
def actionlint() -> Path:
    """The pinned actionlint (built from the Go module proxy on first use)."""
    build.ensure_built(components=(versions.component("actionlint"),))
    return build.binary("actionlint")


def workflow() -> dict[str, Any]:
    """The workflow, parsed (PyYAML reads the `on:` key as True; the jobs are what we need)."""
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def test_workflow_passes_actionlint(actionlint: Path) -> None:
    result = subprocess.run(
        [str(actionlint), "-no-color", str(WORKFLOW)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_wrong_output_reference(actionlint: Path, tmp_path: Path) -> None:
    """The lint is not vacuous: a reference to a step that does not exist fails it."""
    broken = tmp_path / ".github" / "workflows" / "release.yml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text().replace("steps.check.outputs.version", "steps.chek.outputs.version")
    broken.write_text(text)
    result = subprocess.run(
        [str(actionlint), "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "chek" in result.stdout


def resolve(env: dict[str, str], context: dict[str, str]) -> dict[str, str]:
    """Return a step's env with each `${{ name }}` replaced from `context` (unknown: fail)."""

    def value(match: re.Match[str]) -> str:
        assert match[1] in context, f"no value for ${{{{ {match[1]} }}}} in this test"
        return context[match[1]]

    return {key: EXPRESSION.sub(value, str(text)) for key, text in env.items()}


def run_steps(tmp_path: Path, helm: Path) -> dict[str, str]:
    """Run every runnable `run:` step of every job in order; return the expression context."""
    base = {  # `python` is this venv's, where kubeserve is installed as the step installs it
        "PATH": f"{Path(sys.executable).parent}:{helm.parent}:/usr/bin:/bin",
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "HOME": str(tmp_path),
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    context = {"github.ref_name": f"v{VERSION}", **USES_OUTPUTS}
    ran: list[str] = []
    for job_name, job in workflow()["jobs"].items():
        for step in job["steps"]:
            if "run" not in step or step["name"] in NETWORK_STEPS:
                continue
            assert "${{" not in step["run"], f"{step['name']}: expressions go through env"
            output = tmp_path / f"output-{len(ran)}"
            output.touch()
            env = base | resolve(step.get("env", {}), context) | {"GITHUB_OUTPUT": str(output)}
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, f"{job_name}/{step['name']}:\n{result.stderr}"
            ran.append(step["name"])
            for line in output.read_text().splitlines():
                key, _, value = line.partition("=")
                context[f"steps.{step.get('id')}.outputs.{key}"] = value
        for key, expression in job.get("outputs", {}).items():
            context[f"needs.{job_name}.outputs.{key}"] = resolve({key: expression}, context)[key]
    every = [s["name"] for j in workflow()["jobs"].values() for s in j["steps"] if "run" in s]
    assert set(every) == set(ran) | set(NETWORK_STEPS)  # NETWORK_STEPS names no gone step
    return context


def test_every_runnable_step_runs_and_produces_the_release(
    tmp_path: Path, helm_binary: Path, kubectl_binary: Path
) -> None:
    """check -> helm package -> assets, as the workflow chains them; the results are right."""
    context = run_steps(tmp_path, helm_binary)
    assert context["needs.verify.outputs.version"] == VERSION
    assert context["needs.verify.outputs.helm-version"] == versions.HELM
    assert context["needs.verify.outputs.registry"] == "ghcr.io"
    operator_image = context["needs.verify.outputs.operator-image"]
    runtime_image = context["needs.verify.outputs.runtime-image"]

    # the packaged chart runs both images by the version tag (its appVersion)
    package = tmp_path / "runner" / "chart" / f"kubeserve-{VERSION}.tgz"
    rendered = subprocess.run(
        [str(helm_binary), "template", "kubeserve", str(package)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = [obj for obj in yaml.safe_load_all(rendered) if obj]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{operator_image}:{VERSION}"
    )
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert f"{runtime_image}:{VERSION}" in config["data"].values()

    # the kustomize bundle pins the operator by digest; the CRDs and notes are there
    assets = tmp_path / "runner" / "assets"
    with tarfile.open(assets / f"kubeserve-manifests-{VERSION}.tar.gz") as tar:
        tar.extractall(tmp_path / "bundle", filter="data")
    built = subprocess.run(
        [str(kubectl_binary), "kustomize", str(tmp_path / "bundle" / "kubeserve-manifests")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kinds = {o["kind"]: o for o in yaml.safe_load_all(built) if o}
    image = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{operator_image}@{DIGESTS['operator']}"
    assert "CustomResourceDefinition" in kinds
    crds = list(yaml.safe_load_all((assets / f"kubeserve-crds-{VERSION}.yaml").read_text()))
    assert [c["kind"] for c in crds] == ["CustomResourceDefinition"]
    notes = (assets / "NOTES.md").read_text()
    assert f"{runtime_image}@{DIGESTS['runtime']}" in notes
    assert f"{release.CHART_REPOSITORY}/kubeserve --version {VERSION}" in notes


def test_release_needs_no_extra() -> None:
    """The workflow installs kubeserve without extras: `check` runs without any of them."""
    blocked = ["kopf", "kubernetes", "httpx", "tenacity", "cryptography", "starlette", "numpy"]
    code = (
        f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
        "from kubeserve.release import main\n"
        f"sys.exit(main(['--root', {str(ROOT)!r}, 'check', 'v{VERSION}']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"version={VERSION}" in result.stdout.splitlines()


def test_check_refuses_a_tag_the_tree_does_not_carry(capsys: pytest.CaptureFixture[str]) -> None:
    assert release.main(["--root", str(ROOT), "check", "v9.9.9"]) == 1
    err = capsys.readouterr().err
    for where in ("Chart.yaml version", "Chart.yaml appVersion", "pyproject.toml project.version"):
        assert f"{where} is '{VERSION}', the tag says '9.9.9'" in err


@pytest.mark.parametrize(("tag", "version"), [("v1.2.3", "1.2.3"), ("v0.1.0-rc.1", "0.1.0-rc.1")])
def test_version_from_tag(tag: str, version: str) -> None:
    assert release.version_from_tag(tag) == version


@pytest.mark.parametrize("tag", ["1.2.3", "v1.2", "v1.2.3+build", "release-1", "v01.2.3x"])
def test_non_release_tags_are_refused(tag: str) -> None:
    with pytest.raises(release.ReleaseError, match="not a release tag"):
        release.version_from_tag(tag)


def test_version_problems_name_each_mismatch() -> None:
    chart = {"version": "1.0.0", "appVersion": "1.0.1"}
    assert release.version_problems("1.0.0", chart, "1.0.0") == [
        "Chart.yaml appVersion is '1.0.1', the tag says '1.0.0'"
    ]
    assert (
        release.version_problems("1.0.0", {"version": "1.0.0", "appVersion": "1.0.0"}, "1.0.0")
        == []
    )


def test_images_must_share_one_registry() -> None:
    images = release.Images(operator="ghcr.io/a/operator", runtime="quay.io/a/runtime")
    with pytest.raises(release.ReleaseError, match="different registries"):
        _ = images.registry


def test_bad_digests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(release.ReleaseError, match="not sha256"):
        release.write_assets(VERSION, {**DIGESTS, "runtime": "latest"}, ROOT, tmp_path)
    with pytest.raises(release.ReleaseError, match="not an image digest"):
        release.pinned_kustomization({}, "ghcr.io/kubeserve/operator", "sha256:abc")


def test_pinning_replaces_an_earlier_pin_of_the_same_image() -> None:
    first = release.pinned_kustomization({"resources": ["a.yaml"]}, "img", DIGESTS["operator"])
    second = release.pinned_kustomization(first, "img", DIGESTS["runtime"])
    assert second == {
        "resources": ["a.yaml"],
        "images": [{"name": "img", "digest": DIGESTS["runtime"]}],
    }


def test_bundle_is_reproducible() -> None:
    files = {"b.yaml": b"b: 1\n", "a.yaml": b"a: 1\n"}
    assert release.bundle(files, "x") == release.bundle(dict(reversed(files.items())), "x")
