"""Pure text work on Go modules: wrapper go.mod files and version-stamping ldflags.

k8s.io/kubernetes cannot be ``go install``-ed: its go.mod points every staging module
(k8s.io/api, k8s.io/client-go, ...) at ``./staging/...`` with version v0.0.0. A scratch
wrapper module that requires k8s.io/kubernetes and replaces each of those modules with
its published v0.Y.Z builds the real binaries. Without ``-X`` stamps the binaries report
``v0.0.0-master`` and version checks (kubectl skew, Helm capabilities) go wrong.
"""

from __future__ import annotations

import re

_STAGING = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[A-Za-z0-9._/-]+)\s+=>\s+\./staging/", re.M)
_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)\s*$", re.M)
_GODEBUG_LINE = re.compile(r"^godebug\s+([^(\s].*?)\s*$", re.M)
_GODEBUG_BLOCK = re.compile(r"^godebug\s*\(\s*$(.*?)^\)", re.M | re.S)
_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)(?:\s*//.*)?$", re.M)


def staging_modules(gomod: str) -> list[str]:
    """Return the modules that an upstream go.mod replaces with a ``./staging`` path."""
    return sorted(set(_STAGING.findall(gomod)))


def go_directive(gomod: str) -> str:
    """Return the ``go`` directive's version of a go.mod text."""
    match = _GO_DIRECTIVE.search(gomod)
    if match is None:
        raise ValueError("go.mod has no 'go' directive")
    return match.group(1)


def godebug_settings(gomod: str) -> list[str]:
    """Return the ``godebug`` settings (``key=value``) of a go.mod, line or block form."""
    settings = list(_GODEBUG_LINE.findall(gomod))
    for block in _GODEBUG_BLOCK.findall(gomod):
        settings.extend(line.strip() for line in block.splitlines() if line.strip())
    return settings


def required_version(gomod: str, module: str) -> str:
    """Return the version at which a go.mod requires ``module``."""
    for path, version in _REQUIRE.findall(gomod):
        if path == module:
            return str(version)
    raise KeyError(f"go.mod does not require {module}")


def wrapper_gomod(
    name: str,
    go_version: str,
    requires: dict[str, str],
    replaces: dict[str, str] | None = None,
    godebug: list[str] | None = None,
) -> str:
    """Return the text of a scratch module's go.mod."""
    lines = [f"module {name}", "", f"go {go_version}", ""]
    lines += [f"godebug {setting}" for setting in godebug or []]
    lines += ["require ("] + [f"\t{mod} {ver}" for mod, ver in sorted(requires.items())] + [")"]
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {target}" for mod, target in sorted(replaces.items())]
        lines += [")"]
    return "\n".join(lines) + "\n"


def kubernetes_wrapper_gomod(upstream_gomod: str, version: str, staging: str) -> str:
    """Return the wrapper go.mod that builds k8s.io/kubernetes ``version``."""
    return wrapper_gomod(
        "kubeserve.local/kubernetes-wrapper",
        go_directive(upstream_gomod),
        {"k8s.io/kubernetes": version},
        {mod: f"{mod} {staging}" for mod in staging_modules(upstream_gomod)},
        godebug_settings(upstream_gomod),
    )


def tools_go(packages: list[str]) -> str:
    """Return a ``tools.go`` that keeps ``packages`` in the module graph for ``go mod tidy``."""
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def kubernetes_ldflags(version: str) -> str:
    """Return the -ldflags that stamp a Kubernetes version into component-base and client-go."""
    major, minor, _ = version.lstrip("v").split(".")
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def helm_ldflags(version: str, client_go_version: str) -> str:
    """Return Helm's release -ldflags: its version and the Kubernetes minor it defaults to."""
    # Same derivation as Helm's Makefile: client-go v0.Y.Z -> Kubernetes 1.Y.
    _, minor, _ = client_go_version.lstrip("v").split(".")
    flags = [
        "-s",
        "-w",
        f"-X helm.sh/helm/v3/internal/version.version={version}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)
