"""The rollout package reads top-down: its docstring lists every module, and each module
imports only modules listed below it (no import runs back up, so no cycle can form)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kubeserve.rollout

PACKAGE = Path(kubeserve.rollout.__file__).parent
PREFIX = "kubeserve.rollout."


def documented_order() -> list[str]:
    """Module names in the order the package docstring lists them (first mention)."""
    names = re.findall(r":mod:`\.(\w+)`", kubeserve.rollout.__doc__ or "")
    return list(dict.fromkeys(names))


def rollout_imports(module: str) -> set[str]:
    """The sibling modules one module imports (at any level of the file)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
            found.add((node.module or "")[len(PREFIX) :].split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {
                a.name[len(PREFIX) :].split(".")[0] for a in node.names if a.name.startswith(PREFIX)
            }
    return found


def test_the_docstring_lists_every_module_once() -> None:
    """A new module must take its place in the documented order."""
    files = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert sorted(documented_order()) == sorted(files)


def upward(order: list[str], imports: dict[str, set[str]]) -> dict[str, list[str]]:
    """For each module, the imports of modules listed at or above it."""
    found = {
        module: sorted(m for m in imports[module] if order.index(m) <= order.index(module))
        for module in order
    }
    return {module: up for module, up in found.items() if up}


def test_each_module_imports_only_modules_listed_below_it() -> None:
    """Read top-down, every import points further down the list."""
    order = documented_order()
    assert upward(order, {m: rollout_imports(m) for m in order}) == {}


def test_an_import_back_up_is_reported() -> None:
    """The check itself: `revision` importing `decision` (listed above it) is caught."""
    order = ["decision", "canary", "revision"]
    imports = {"decision": {"canary", "revision"}, "canary": {"revision"}, "revision": {"decision"}}
    assert upward(order, imports) == {"revision": ["decision"]}
    assert "canary" in rollout_imports("decision")
