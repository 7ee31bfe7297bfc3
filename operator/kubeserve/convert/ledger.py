"""The account of a conversion: each input field either mapped somewhere or reported.

Limits first: paths are recorded, not values, so a field is "accounted for" when it or
any parent was taken or dropped; a parent taken as a whole (``resources``) accounts for
everything under it. :meth:`Ledger.unaccounted` lists the leaves nothing claimed, and
the converters report those too (a KServe field added after this converter was written
is reported, not lost).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Path = tuple[str | int, ...]
Outcome = Literal["mapped", "changed", "dropped"]


def render(path: Path) -> str:
    """Return ``spec.predictor.containers[0].image`` for a path."""
    if not path:
        return "(the whole document)"
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def leaves(value: Any, path: Path = ()) -> Iterator[Path]:
    """Yield the path of every leaf of a YAML value (empty maps and lists are leaves)."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


@dataclass(frozen=True)
class Note:
    """What happened to one input field."""

    source: Path
    outcome: Outcome
    target: str = ""
    """Where it went in the result (mapped or changed)."""
    reason: str = ""
    """Why it changed or was not carried over."""

    def line(self) -> str:
        """One line of the report."""
        where = render(self.source)
        if self.outcome == "mapped":
            return f"  mapped    {where} -> {self.target}"
        if self.outcome == "changed":
            return f"  changed   {where} -> {self.target}: {self.reason}"
        return f"  not carried over: {where}: {self.reason}"


@dataclass
class Ledger:
    """Reads an input document and records what each field became."""

    source: Mapping[str, Any]
    notes: list[Note] = field(default_factory=list)

    def get(self, path: Path, default: Any = None) -> Any:
        """Return the value at ``path`` (``default`` when absent), recording nothing."""
        node: Any = self.source
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return default
            elif not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def has(self, path: Path) -> bool:
        """Whether ``path`` is present in the input."""
        sentinel = object()
        return self.get(path, sentinel) is not sentinel

    def take(self, path: Path, target: str, reason: str = "") -> Any:
        """Return the value at ``path``, recorded as carried to ``target`` (changed if reason)."""
        self.notes.append(Note(path, "changed" if reason else "mapped", target, reason))
        return self.get(path)

    def drop(self, path: Path, reason: str) -> None:
        """Record that the field at ``path`` (and everything under it) is not carried over."""
        self.notes.append(Note(path, "dropped", reason=reason))

    def accounted(self, path: Path) -> bool:
        """Whether ``path`` or one of its parents has a note."""
        return any(path[: len(note.source)] == note.source for note in self.notes)

    def settled(self, path: Path) -> bool:
        """Whether every leaf under ``path`` has a note."""
        return all(self.accounted(leaf) for leaf in leaves(self.get(path), path))

    def unaccounted(self) -> list[Path]:
        """The input's leaves that no note covers."""
        return [path for path in leaves(self.source) if not self.accounted(path)]

    def dropped(self) -> list[Note]:
        """The notes of fields not carried over."""
        return [note for note in self.notes if note.outcome == "dropped"]
