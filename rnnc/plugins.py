"""Backends are plugins, found through the `rnnc.backends` entry point group.

The built-in `torch` and `onnx` backends are registered exactly like a third party's,
in pyproject.toml. Nothing registers itself on import: the installed distributions'
metadata is the registry, read when a backend is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import ir
from .errors import UsageError

GROUP = "rnnc.backends"
CAPABILITIES = ("train", "infer", "export")


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: frozenset[str]  # a subset of {"train", "infer", "export"}

    def compile(self, model: ir.Model, weights: Mapping[str, np.ndarray] | None = None, **options: Any) -> Any: ...


@dataclass(frozen=True)
class Found:
    """A backend's entry point, loaded or not: `error` says why it could not load."""

    name: str
    value: str  # "module:attribute"
    backend: Backend | None
    error: str | None = None


def _load(entry: EntryPoint) -> Found:
    try:
        obj = entry.load()
    except Exception as err:  # a broken plugin must not break `rnnc backends`
        return Found(entry.name, entry.value, None, f"{type(err).__name__}: {err}")
    if not isinstance(obj, Backend):
        return Found(entry.name, entry.value, None, "does not provide name, capabilities and compile()")
    return Found(entry.name, entry.value, obj)


def discover() -> list[Found]:
    """Every backend installed, sorted by name, each loaded (or with its load error)."""
    return [_load(entry) for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name)]


def get_backend(name: str, capability: str | None = None) -> Backend:
    """The backend called `name`; a usage error if it is missing, broken or lacks `capability`."""
    entries = {e.name: e for e in entry_points(group=GROUP)}
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise UsageError(f"no backend named '{name}' (installed: {known})")
    found = _load(entries[name])
    if found.backend is None:
        hint = " (install the train extra: pip install 'rnnc[train]')" if name == "torch" else ""
        raise UsageError(f"backend '{name}' cannot be loaded: {found.error}{hint}")
    if capability is not None and capability not in found.backend.capabilities:
        have = ", ".join(sorted(found.backend.capabilities))
        raise UsageError(f"backend '{name}' cannot {capability} (it can: {have})")
    return found.backend
