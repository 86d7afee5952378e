"""A search space file: `--set` paths with a distribution each, and the study's settings.

    layers.0.units: {int: [16, 128], log: true}
    optimizer.lr: {float: [1.0e-4, 1.0e-2], log: true}
    layers.0.type: {choice: [lstm, gru]}
    pruner: median          # median (default), halving or none
    sampler: tpe            # tpe (default) or random
    monitor: val_loss       # default: training.early_stopping.monitor, else val_loss
    direction: minimize     # default: from the monitor (accuracy-like ones are maximised)
    seed: 0                 # the sampler's seed (default: none)

The file is read with `rnnc.loader`, so every problem is placed at its line and column.
Each range is also checked against the spec (`check_against`): its low and high ends and
each choice are applied alone with the same override machinery and validator as
`rnnc check --set`, so a path that is not a spec setting and a value the schema refuses
are reported here, before any trial runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnc.errors import Problem, SpecError, did_you_mean
from rnnc.loader import Document, load_file

PRUNERS = ("median", "halving", "none")
SAMPLERS = ("tpe", "random")
DIRECTIONS = ("minimize", "maximize")
SETTINGS = ("pruner", "sampler", "monitor", "direction", "seed")  # the file's keys that are no spec path
KINDS = ("int", "float", "choice")
_OPTIONS = {"int": ("log", "step"), "float": ("log", "step"), "choice": ()}


@dataclass(frozen=True)
class Param:
    """One tuned setting: its `--set` path and distribution."""

    path: str
    kind: str  # int, float or choice
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def override(self, value: Any) -> str:
        """`path=value` for `--set`: JSON is YAML, so strings stay strings (`"1"` is no int)."""
        return f"{self.path}={json.dumps(value)}"

    def probes(self) -> list[tuple[str, Any]]:
        """The values that stand for the whole range: its two ends, or every choice."""
        if self.kind == "choice":
            return [(f"choice {json.dumps(c)}", c) for c in self.choices]
        return [(f"low end {self.low!r}", self.low), (f"high end {self.high!r}", self.high)]

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        scale = " (log scale)" if self.log else ""
        step = f" in steps of {self.step!r}" if self.step is not None else ""
        return f"{self.kind} from {self.low!r} to {self.high!r}{step}{scale}"

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an Optuna trial, named by its path."""
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log)
        return trial.suggest_categorical(self.path, list(self.choices))


@dataclass(frozen=True)
class Space:
    origin: str
    params: tuple[Param, ...]
    pruner: str = "median"
    sampler: str = "tpe"
    monitor: str | None = None
    direction: str | None = None
    seed: int | None = None
    doc: Document | None = field(default=None, compare=False, repr=False)

    def describe(self) -> dict[str, str]:
        """What a study is held to on `--resume`: each parameter's distribution."""
        return {p.path: p.describe() for p in self.params}


def load_space(path: str | Path, spec: str | Path | None = None, overrides: Sequence[str] = ()) -> Space:
    """Read and check a space file and, given `spec`, check its ranges against the spec
    (with `overrides` applied first); every problem is raised together."""
    space, problems = _parse(path)
    if spec is not None:
        problems += _spec_problems(space, spec, overrides)
    if problems:
        raise SpecError(problems)
    return space


def _parse(path: str | Path) -> tuple[Space, list[Problem]]:
    """The space with its well-formed parameters, and the file's problems."""
    doc = load_file(path)
    problems = list(doc.problems)
    if not isinstance(doc.data, dict):
        raise SpecError(problems or [doc.problem((), "a space file is a mapping: `--set` paths with a distribution each")])
    params: list[Param] = []
    settings: dict[str, Any] = {}
    for key, value in doc.data.items():
        if key in SETTINGS:
            problem = _setting_problem(doc, key, value)
            if problem:
                problems.append(problem)
            else:
                settings[key] = value
            continue
        param = _param(doc, key, value, problems)
        if param is not None:
            params.append(param)
    if not params and not problems:
        problems.append(doc.problem((), "the space names no setting to tune (e.g. `optimizer.lr: {float: [1.0e-4, 1.0e-2], log: true}`)"))
    return Space(str(path), tuple(params), doc=doc, **settings), problems


def _setting_problem(doc: Document, key: str, value: Any) -> Problem | None:
    allowed = {"pruner": PRUNERS, "sampler": SAMPLERS, "direction": DIRECTIONS}.get(key)
    if allowed is not None and value not in allowed:
        return doc.problem((key,), f"expected one of {', '.join(allowed)}, got {json.dumps(value)}{did_you_mean(str(value), allowed)}")
    if key == "monitor" and (not isinstance(value, str) or not value):
        return doc.problem((key,), f"expected the name of a logged metric (val_loss, val_accuracy ...), got {json.dumps(value)}")
    if key == "seed" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        return doc.problem((key,), f"expected an integer >= 0, got {json.dumps(value)}")
    return None


def _param(doc: Document, key: str, value: Any, problems: list[Problem]) -> Param | None:
    where = (key,)
    if not key or any(not part for part in key.split(".")):
        problems.append(doc.problem(where, "expected a dotted spec path like layers.0.units", key=True))
        return None
    if not isinstance(value, dict):
        problems.append(doc.problem(where, f"expected a distribution: {{int: [lo, hi]}}, {{float: [lo, hi]}} or {{choice: [...]}}, got {json.dumps(value)}"))
        return None
    kinds = [k for k in KINDS if k in value]
    if len(kinds) != 1:
        said = "none" if not kinds else " and ".join(kinds)
        problems.append(doc.problem(where, f"expected exactly one of int, float, choice; got {said}"))
        return None
    kind = kinds[0]
    before = len(problems)
    for option in value:
        if option != kind and option not in _OPTIONS[kind]:
            known = (kind, *_OPTIONS[kind])
            problems.append(doc.problem((*where, option), f"unknown setting '{option}' for {kind}{did_you_mean(option, known)}", key=True))
    if kind == "choice":
        return _choice(doc, key, value["choice"], problems, before)
    return _range(doc, key, kind, value, problems, before)


def _number(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == "int" else isinstance(value, (int, float)) and math.isfinite(value)


def _range(doc: Document, key: str, kind: str, value: dict, problems: list[Problem], before: int) -> Param | None:
    bounds, log, step = value[kind], value.get("log", False), value.get("step")
    noun = "integers" if kind == "int" else "numbers"
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(_number(b, kind) for b in bounds):
        problems.append(doc.problem((key, kind), f"expected [low, high], two {noun}, got {json.dumps(bounds)}"))
        return None
    low, high = bounds
    if low > high:
        problems.append(doc.problem((key, kind), f"an empty range: low {low!r} > high {high!r}"))
    if not isinstance(log, bool):
        problems.append(doc.problem((key, "log"), f"expected true or false, got {json.dumps(log)}"))
    elif log and low <= 0:
        problems.append(doc.problem((key, kind, 0), f"a log scale needs low > 0, got {low!r}"))
    if step is not None:
        if not _number(step, kind) or step <= 0:
            problems.append(doc.problem((key, "step"), f"expected {'an integer' if kind == 'int' else 'a number'} > 0, got {json.dumps(step)}"))
        elif log:
            problems.append(doc.problem((key, "step"), "step and log: true cannot go together (Optuna samples a log scale continuously)"))
        elif low <= high and not math.isclose(((high - low) / step) % 1, 0, abs_tol=1e-9) and not math.isclose(((high - low) / step) % 1, 1, abs_tol=1e-9):
            problems.append(doc.problem((key, "step"), f"high - low ({high - low!r}) is not a multiple of step {step!r}"))
    if len(problems) > before:
        return None
    cast = int if kind == "int" else float
    return Param(key, kind, cast(low), cast(high), log, None if step is None else cast(step))


def _choice(doc: Document, key: str, choices: Any, problems: list[Problem], before: int) -> Param | None:
    if not isinstance(choices, list) or not choices:
        problems.append(doc.problem((key, "choice"), f"expected a non-empty list of values, got {json.dumps(choices)}"))
        return None
    seen: list[Any] = []
    for i, choice in enumerate(choices):
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            problems.append(doc.problem((key, "choice", i), f"a choice is one value (a number, a string, true/false or null), got {json.dumps(choice)}"))
        elif any(type(choice) is type(s) and choice == s for s in seen):
            problems.append(doc.problem((key, "choice", i), f"{json.dumps(choice)} is listed twice"))
        seen.append(choice)
    if len(problems) > before:
        return None
    return Param(key, "choice", choices=tuple(choices))


def _spec_problems(space: Space, spec: str | Path, overrides: Sequence[str]) -> list[Problem]:
    """The problems the space's values make in `spec`: each probe value applied alone,
    validated as `rnnc check --set` would, placed in the space file. A spec that is not
    valid as given raises its own problems."""
    from rnnc.overrides import apply_overrides
    from rnnc.spec import compile_document, load_model

    load_model(spec, overrides)  # the spec as given must be valid: raises its own problems
    assert space.doc is not None
    base = Path(spec).resolve().parent
    problems: list[Problem] = []
    for param in space.params:
        found: list[tuple[str, Any, list[str]]] = []
        for label, value in param.probes():
            try:
                compile_document(apply_overrides(load_file(spec), [*overrides, param.override(value)]), base)
            except SpecError as err:
                found.append((label, value, [_said(p) for p in err.problems]))
            else:
                found.append((label, value, []))
        common = set.intersection(*(set(lines) for _, _, lines in found)) if len(found) > 1 else set()
        for line in sorted(common):  # the same for every value: the path itself
            problems.append(space.doc.problem((param.path,), f"not a setting this spec can take: {line}", key=True))
        for index, (label, _value, lines) in enumerate(found):
            at = (param.path, param.kind, index)  # the value as written: [low, high]'s entry, or the choice
            problems += [space.doc.problem((param.path,), f"the spec refuses the {label}: {line}", at=at) for line in lines if line not in common]
    return problems


def _said(problem: Problem) -> str:
    """A problem of the overridden spec without its origin (the probe's `--set`, the spec file)."""
    return f"{problem.path}: {problem.message}" if problem.path else problem.message
