"""`--set key.path=value`: command-line edits applied to a loaded spec.

A key path is dotted (`training.epochs`, `layers.0.units`); the value is read as one
YAML scalar or flow collection with the same safe loader as spec files. The edited
values remember the override they came from, so an error in one names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import JsonPath, Problem, SpecError
from .loader import Document, Position, load_text


def _parse_key(key: str) -> JsonPath:
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))


def _apply(doc: Document, text: str) -> str | None:
    """Apply one override; return why it cannot be applied, or None."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        return "expected key.path=value"
    path = _parse_key(key)
    value_doc = load_text(raw if raw.strip() else "''", f"--set {text}")
    doc.problems.extend(value_doc.problems)
    parent: Any = doc.data
    for depth, part in enumerate(path[:-1]):
        here = path[: depth + 1]
        if isinstance(part, int):
            if not isinstance(parent, list) or part >= len(parent):
                size = len(parent) if isinstance(parent, list) else 0
                return f"{'.'.join(map(str, here[:-1]))} has no entry {part} (it has {size})"
            parent = parent[part]
        else:
            if not isinstance(parent, dict):
                return f"{'.'.join(map(str, here[:-1]))} is not a mapping"
            parent = parent.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(parent, list) or last > len(parent):
            return f"cannot set entry {last} of {'.'.join(map(str, path[:-1])) or 'the spec'}"
        if last == len(parent):
            parent.append(value_doc.data)
        else:
            parent[last] = value_doc.data
    elif isinstance(parent, dict):
        parent[last] = value_doc.data
    else:
        return f"{'.'.join(map(str, path[:-1]))} is not a mapping"
    where = Position(f"--set {text}", None, None)
    for table in (doc.values, doc.keys):
        for stale in [p for p in table if p[: len(path)] == path]:
            del table[stale]
    for sub in value_doc.values:
        doc.values[(*path, *sub)] = where
    for sub in value_doc.keys:
        doc.keys[(*path, *sub)] = where
    doc.keys[path] = where
    return None


def apply_overrides(doc: Document, overrides: Sequence[str]) -> Document:
    """Apply every override in order; those that cannot apply join `doc.problems`."""
    if overrides and not isinstance(doc.data, dict):
        return doc  # the schema reports that the spec is not a mapping
    for text in overrides:
        try:
            reason = _apply(doc, text)
        except SpecError as err:
            doc.problems.extend(err.problems)
            continue
        if reason:
            doc.problems.append(Problem(f"--set {text}", None, None, "", reason))
    return doc
