"""The release workflow's own steps (.github/workflows/release.yml), runnable and tested here.

Limits first: the workflow itself (image builds for two platforms, pushes to the
registry, the GitHub release) can only run on GitHub; what it computes or checks lives
here instead of in inline shell, so that ``tests/unit/test_release.py`` runs every one of
these steps exactly as the workflow calls them. Only the standard library, PyYAML and
this package are imported: the workflow installs kubeserve without extras.

One source for each name: the image repositories are the chart's values (the chart pins
them by its appVersion, so a release tag must equal that), the Helm version is
:data:`kubeserve.devcluster.versions.HELM`, and the chart's OCI repository is
:data:`CHART_REPOSITORY`, beside the images.

``python -m kubeserve.release check TAG`` prints ``key=value`` lines for
``$GITHUB_OUTPUT``; ``python -m kubeserve.release assets ...`` writes the files attached
to the release (CRDs, kustomize bundle pinned by digest, notes).
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import sys
import tarfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeserve.devcluster import versions

CHART_REPOSITORY = "oci://ghcr.io/kubeserve/charts"
"""Where the packaged chart is pushed: ``helm install kubeserve oci://.../kubeserve``."""

TAG_PATTERN = re.compile(r"^v(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$")
"""A release tag: ``v`` and a SemVer 2 version without build metadata (Helm needs SemVer)."""

DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
"""An image digest as docker/build-push-action reports it."""

CRDS_ASSET = "kubeserve-crds-{version}.yaml"
BUNDLE_ASSET = "kubeserve-manifests-{version}.tar.gz"
NOTES_ASSET = "NOTES.md"


class ReleaseError(ValueError):
    """The tag, the versions or a digest are not what a release needs; the message says why."""


@dataclass(frozen=True)
class Images:
    """The two image repositories (no tag) the chart points at."""

    operator: str
    runtime: str

    @property
    def registry(self) -> str:
        """The registry host both live in (what the workflow logs in to)."""
        hosts = {self.operator.split("/", 1)[0], self.runtime.split("/", 1)[0]}
        if len(hosts) != 1:
            raise ReleaseError(f"the chart's images are in different registries: {sorted(hosts)}")
        return hosts.pop()


def version_from_tag(tag: str) -> str:
    """Return ``1.2.3`` for the tag ``v1.2.3``; refuse anything else."""
    match = TAG_PATTERN.match(tag)
    if match is None:
        raise ReleaseError(f"tag {tag!r} is not a release tag (v<major>.<minor>.<patch>[-pre])")
    return match["version"]


def version_problems(tag_version: str, chart: Mapping[str, Any], project_version: str) -> list[str]:
    """Return why ``tag_version`` cannot be released from this tree (empty: it can).

    The chart's ``version`` is what ``helm install --version`` asks for, its
    ``appVersion`` is the tag of both images (values leave the tag empty), and the Python
    package's version is what ``kubeserve --version`` prints in those images: all three
    must be the tag's.
    """
    found = {
        "Chart.yaml version": str(chart.get("version")),
        "Chart.yaml appVersion": str(chart.get("appVersion")),
        "pyproject.toml project.version": project_version,
    }
    return [
        f"{where} is {value!r}, the tag says {tag_version!r}"
        for where, value in found.items()
        if value != tag_version
    ]


def chart_images(values: Mapping[str, Any]) -> Images:
    """Return the image repositories named by the chart's values."""
    return Images(
        operator=values["operator"]["image"]["repository"],
        runtime=values["config"]["runtimeImage"]["repository"],
    )


def outputs(version: str, images: Images) -> dict[str, str]:
    """Return the ``check`` step's outputs (read by the later jobs)."""
    return {
        "version": version,
        "registry": images.registry,
        "operator-image": images.operator,
        "runtime-image": images.runtime,
        "chart-repository": CHART_REPOSITORY,
        "helm-version": versions.HELM,
    }


def pinned_kustomization(
    kustomization: Mapping[str, Any], image: str, digest: str
) -> dict[str, Any]:
    """Return ``kustomization`` with ``image`` replaced by ``image@digest`` (kustomize images)."""
    if DIGEST_PATTERN.match(digest) is None:
        raise ReleaseError(f"{digest!r} is not an image digest (sha256:<64 hex>)")
    pins = [entry for entry in kustomization.get("images") or [] if entry.get("name") != image]
    return {**kustomization, "images": [*pins, {"name": image, "digest": digest}]}


def bundle(files: Mapping[str, bytes], folder: str) -> bytes:
    """Return a reproducible .tar.gz of ``files`` (name -> content) under ``folder/``.

    Sorted names, zero mtimes, root-owned 0644 entries: the same tree gives the same bytes.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def notes(version: str, images: Images, digests: Mapping[str, str]) -> str:
    """Return the release notes: what was published, pinned by digest, and how to install."""
    chart = f"{CHART_REPOSITORY}/kubeserve"
    return (
        f"## kubeserve {version}\n\n"
        "Images (linux/amd64, linux/arm64):\n\n"
        f"- `{images.operator}:{version}` (`{images.operator}@{digests['operator']}`)\n"
        f"- `{images.runtime}:{version}` (`{images.runtime}@{digests['runtime']}`)\n\n"
        f"Helm chart `{chart}` version {version}, which runs these images by tag:\n\n"
        "```bash\n"
        f"helm install kubeserve {chart} --version {version} \\\n"
        "  --namespace kubeserve-system --create-namespace\n"
        "```\n\n"
        "Without Helm: the attached kustomize bundle pins the operator image by digest\n"
        "(`tar xzf "
        f"{BUNDLE_ASSET.format(version=version)} && kubectl apply --server-side -k "
        "kubeserve-manifests/`);\n"
        f"the CRDs alone are in `{CRDS_ASSET.format(version=version)}`.\n"
    )


def read_tree(root: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Return (Chart.yaml, values.yaml, project version) of the checkout at ``root``."""
    chart = yaml.safe_load((root / "Chart.yaml").read_text())
    values = yaml.safe_load((root / "values.yaml").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return chart, values, str(project)


def check(tag: str, root: Path) -> dict[str, str]:
    """Verify ``tag`` against the checkout and return the step's outputs."""
    version = version_from_tag(tag)
    chart, values, project = read_tree(root)
    problems = version_problems(version, chart, project)
    if problems:
        raise ReleaseError("cannot release " + tag + ": " + "; ".join(problems))
    return outputs(version, chart_images(values))


def write_assets(version: str, digests: Mapping[str, str], root: Path, out: Path) -> list[Path]:
    """Write the CRDs, the digest-pinned kustomize bundle and the notes into ``out``."""
    _, values, _ = read_tree(root)
    images = chart_images(values)
    for name, digest in digests.items():
        if DIGEST_PATTERN.match(digest) is None:
            raise ReleaseError(f"{name} digest {digest!r} is not sha256:<64 hex>")
    out.mkdir(parents=True, exist_ok=True)
    crds = "---\n".join(path.read_text() for path in sorted((root / "crds").glob("*.yaml")))
    manifests = {
        path.name: path.read_bytes() for path in sorted((root / "manifests").glob("*.yaml"))
    }
    kustomization = yaml.safe_load(manifests["kustomization.yaml"])
    pinned = pinned_kustomization(kustomization, images.operator, digests["operator"])
    manifests["kustomization.yaml"] = yaml.safe_dump(pinned, sort_keys=False).encode()
    written = {
        out / CRDS_ASSET.format(version=version): crds.encode(),
        out / BUNDLE_ASSET.format(version=version): bundle(manifests, "kubeserve-manifests"),
        out / NOTES_ASSET: notes(version, images, digests).encode(),
    }
    for path, content in written.items():
        path.write_bytes(content)
    return list(written)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m kubeserve.release``."""
    parser = argparse.ArgumentParser(prog="python -m kubeserve.release", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("."), help="the checkout (default: .)")
    sub = parser.add_subparsers(dest="command", required=True)
    check_cmd = sub.add_parser("check", help="verify a tag; print key=value outputs")
    check_cmd.add_argument("tag", help="the pushed tag, e.g. v0.1.0")
    assets = sub.add_parser("assets", help="write the files attached to the release")
    assets.add_argument("--version", required=True)
    assets.add_argument("--operator-digest", required=True)
    assets.add_argument("--runtime-digest", required=True)
    assets.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one step; a ReleaseError is printed as the step's failure reason."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            for key, value in check(args.tag, args.root).items():
                print(f"{key}={value}")
        else:
            digests = {"operator": args.operator_digest, "runtime": args.runtime_digest}
            for path in write_assets(args.version, digests, args.root, args.out):
                print(f"wrote {path}", file=sys.stderr)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
