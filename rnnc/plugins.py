"""Backends are plugins, found through the `rnnc.backends` entry point group.

The built-in `torch` and `onnx` backends are registered exactly like a third party's,
in pyproject.toml, and neither imports the other: `rnnc train` trains with one and
exports with another through what these protocols declare. A backend is a `Backend`;
each capability it names promises the methods of its protocol (`TrainingBackend`
for "train", `ExportingBackend` for "export"; "infer" asks only for `compile`), and
these are all the CLI ever calls. Nothing registers itself on import: the installed
distributions' metadata is the registry, read when a backend is asked for.
See docs/plugins.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, overload, runtime_checkable

import numpy as np

from . import ir
from .errors import Problem, UsageError

GROUP = "rnnc.backends"
# Called with each epoch's logs (`epoch`, `loss`, metrics, `val_` ones, `lr`, `time`) once
# the epoch is saved in the run directory; in a data-parallel run, by the writing worker only.
EpochCallback = Callable[[dict[str, Any]], None]
CAPABILITIES = ("train", "infer", "export")


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: frozenset[str]  # a subset of {"train", "infer", "export"}

    def compile(self, model: ir.Model, weights: Mapping[str, np.ndarray] | None = None, **options: Any) -> Any: ...


@runtime_checkable
class TrainingBackend(Backend, Protocol):
    """What "train" promises: `rnnc train` (and `--nproc`)."""

    def train(
        self, model: ir.Model, run_dir: Path, *, spec: Mapping[str, Any] | None, resume: bool,
        device: str, progress: bool, threads: int | None = None, on_epoch: EpochCallback | None = None,
    ) -> Any: ...

    def writes_run_dir(self) -> bool: ...

    def launch(self, nproc: int, worker_args: Sequence[str]) -> int: ...


@runtime_checkable
class ExportingBackend(Backend, Protocol):
    """What "export" promises: `rnnc compile`, and `model.onnx` at the end of `rnnc train`."""

    def check(self, model: ir.Model) -> list[Problem]: ...

    def export(
        self, model: ir.Model, weights: Mapping[str, np.ndarray] | None, path: str | os.PathLike[str], **options: Any
    ) -> None: ...


PROMISES: dict[str, type[Backend]] = {"train": TrainingBackend, "export": ExportingBackend, "infer": Backend}


@dataclass(frozen=True)
class Found:
    """A backend's entry point, loaded or not: `error` says why it could not load."""

    name: str
    value: str  # "module:attribute"
    backend: Backend | None
    error: str | None = None


def methods(protocol: type) -> list[str]:
    """The methods a capability's protocol declares in its own body (not those of `Backend`)."""
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def _missing(obj: Backend) -> dict[str, list[str]]:
    """Per capability `obj` claims, the methods of its protocol that `obj` lacks. A
    capability rnnc does not know promises nothing here (a newer plugin's)."""
    missing = {}
    for capability in sorted(set(obj.capabilities) & set(PROMISES)):
        if lacking := [m for m in methods(PROMISES[capability]) if not callable(getattr(obj, m, None))]:
            missing[capability] = lacking
    return missing


def _load(entry: EntryPoint) -> Found:
    try:
        obj = entry.load()
    except Exception as err:  # a broken plugin must not break `rnnc backends`
        return Found(entry.name, entry.value, None, f"{type(err).__name__}: {err}")
    if not isinstance(obj, Backend):
        return Found(entry.name, entry.value, None, "does not provide name, capabilities and compile()")
    problems = [
        f"says it can {capability} but has no {', '.join(f'{m}()' for m in lacking)}" for capability, lacking in _missing(obj).items()
    ]
    if problems:
        return Found(entry.name, entry.value, None, "; ".join(problems))
    return Found(entry.name, entry.value, obj)


def discover() -> list[Found]:
    """Every backend installed, sorted by name, each loaded (or with its load error)."""
    return [_load(entry) for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name)]


def find(name: str) -> Found | None:
    """The backend called `name`, loaded or with its load error; None when none is installed."""
    entries = [e for e in entry_points(group=GROUP) if e.name == name]
    return _load(entries[0]) if entries else None


@overload
def get_backend(name: str, capability: Literal["train"]) -> TrainingBackend: ...
@overload
def get_backend(name: str, capability: Literal["export"]) -> ExportingBackend: ...
@overload
def get_backend(name: str, capability: str | None = None) -> Backend: ...


def get_backend(name: str, capability: str | None = None) -> Backend:
    """The backend called `name`; a usage error if it is missing, broken or lacks `capability`."""
    found = find(name)
    if found is None:
        known = ", ".join(sorted({e.name for e in entry_points(group=GROUP)})) or "none"
        raise UsageError(f"no backend named '{name}' (installed: {known})")
    if found.backend is None:
        hint = " (install the train extra: pip install 'rnnc[train]')" if name == "torch" else ""
        raise UsageError(f"backend '{name}' cannot be loaded: {found.error}{hint}")
    if capability is not None and capability not in found.backend.capabilities:
        have = ", ".join(sorted(found.backend.capabilities))
        raise UsageError(f"backend '{name}' cannot {capability} (it can: {have})")
    return found.backend
