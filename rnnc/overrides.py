"""`--set key.path=value`: command-line edits applied to a loaded spec.

A key path is dotted (`training.epochs`, `layers.0.units`); the value is read as one
YAML scalar or flow collection with the same safe loader as spec files. A null value
removes a mapping's key (`data.validation=null`): no setting of the schema takes null,
so null can only mean "as if it were not written"; a list entry becomes null
(`input.shape.0=null`, variable length). The edited values remember the override they
came from, so an error in one names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .errors import JsonPath, Problem, SpecError
from .loader import Document, Position, load_text


def _parse_key(key: str) -> JsonPath:
    # isdigit() alone takes '²' for a digit, which int() refuses
    return tuple(int(part) if part.isascii() and part.isdigit() else part for part in key.split("."))


def _apply(doc: Document, text: str) -> str | None:
    """Apply one override; return why it cannot be applied, or None."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        return "expected key.path=value"
    path = _parse_key(key)
    value_doc = load_text(raw if raw.strip() else "''", f"--set {text}")
    # a problem inside the value names its place under the key (`layers.0.units`, not `units`)
    doc.problems.extend(
        dataclasses.replace(p, path=f"{key}{'' if p.path.startswith('[') else '.'}{p.path}") if p.path else p
        for p in _unplaced(value_doc.problems)
    )
    remove = value_doc.data is None and not value_doc.problems
    parent: Any = doc.data
    real: list[str | int] = []  # the path as it is in the data: a digit names a mapping key there
    for part in path:
        name = ".".join(map(str, real)) or "the spec"
        if isinstance(parent, list):
            if not isinstance(part, int):
                return f"{name} is a list: expected an entry number, got '{part}'"
            if part > len(parent) or (part == len(parent) and len(real) < len(path) - 1):
                return f"{name} has no entry {part} (it has {len(parent)})"
        elif isinstance(parent, dict):
            part = str(part)
        else:
            return f"{name} is not a mapping"
        real.append(part)
        if len(real) == len(path):
            break
        if remove and isinstance(parent, dict) and part not in parent:
            return None  # nothing there to remove; creating the sections would add keys
        parent = parent[part] if isinstance(parent, list) else parent.setdefault(part, {})
    last = real[-1]
    path = tuple(real)
    for table in (doc.values, doc.keys):
        for stale in [p for p in table if p[: len(path)] == path]:
            del table[stale]
    if remove and isinstance(parent, dict):
        parent.pop(last, None)
        return None
    if isinstance(parent, list) and last == len(parent):
        parent.append(value_doc.data)
    else:
        parent[last] = value_doc.data
    where = Position(f"--set {text}", None, None)
    for sub in value_doc.values:
        doc.values[(*path, *sub)] = where
    for sub in value_doc.keys:
        doc.keys[(*path, *sub)] = where
    doc.keys[path] = where
    return None


def _unplaced(problems: Sequence[Problem]) -> list[Problem]:
    """An override is one command-line word: a line and column inside its value would
    read as a place in a file (`--set a=[1:1:3: ...`), so they are dropped."""
    return [dataclasses.replace(p, line=None, column=None) for p in problems]


def apply_overrides(doc: Document, overrides: Sequence[str]) -> Document:
    """Apply every override in order; those that cannot apply join `doc.problems`."""
    if overrides and not isinstance(doc.data, dict):
        return doc  # the schema reports that the spec is not a mapping
    for text in overrides:
        try:
            reason = _apply(doc, text)
        except SpecError as err:
            doc.problems.extend(_unplaced(err.problems))
            continue
        if reason:
            doc.problems.append(Problem(f"--set {text}", None, None, "", reason))
    return doc
