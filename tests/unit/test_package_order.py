"""Packages that read top-down: the package docstring lists every module, and each module
imports only modules listed below it (no import runs back up, so no cycle can form)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGES = ["kubeserve.rollout", "kubeserve.local", "kubeserve.experiment"]


def documented_order(package: str) -> list[str]:
    """Module names in the order the package docstring lists them (first mention)."""
    names = re.findall(r":mod:`\.(\w+)`", importlib.import_module(package).__doc__ or "")
    return list(dict.fromkeys(names))


def folder(package: str) -> Path:
    """The package's source folder."""
    return Path(importlib.import_module(package).__file__ or "").parent


def sibling_imports(package: str, module: str) -> set[str]:
    """The sibling modules one module imports (anywhere in the file, TYPE_CHECKING too)."""
    prefix = f"{package}."
    tree = ast.parse((folder(package) / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        found |= {n[len(prefix) :].split(".")[0] for n in names if n.startswith(prefix)}
    return found


def upward(order: list[str], imports: dict[str, set[str]]) -> dict[str, list[str]]:
    """For each module, the imports of modules listed at or above it."""
    found = {
        module: sorted(m for m in imports[module] if order.index(m) <= order.index(module))
        for module in order
    }
    return {module: up for module, up in found.items() if up}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_docstring_lists_every_module_once(package: str) -> None:
    """A new module must take its place in the documented order."""
    files = {p.stem for p in folder(package).glob("*.py") if p.stem != "__init__"}
    assert sorted(documented_order(package)) == sorted(files)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_module_imports_only_modules_listed_below_it(package: str) -> None:
    """Read top-down, every import points further down the list."""
    order = documented_order(package)
    assert upward(order, {m: sibling_imports(package, m) for m in order}) == {}


def test_an_import_back_up_is_reported() -> None:
    """The check itself: `revision` importing `decision` (listed above it) is caught."""
    order = ["decision", "canary", "revision"]
    imports = {"decision": {"canary", "revision"}, "canary": {"revision"}, "revision": {"decision"}}
    assert upward(order, imports) == {"revision": ["decision"]}
    assert "canary" in sibling_imports("kubeserve.rollout", "decision")
