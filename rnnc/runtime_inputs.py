"""What a v2 graph model takes and gives, as its `graph` metadata says, and one input's checks.

`read_input` and `read_output` turn the metadata's entries (`rnnc.metadata.graph_interface`)
into `GraphInput` and `GraphOutput`, refusing what rnnc would not have written (sizes
out of range, a dtype or shape no input has, class names that are not one per unit) with
`Unusable`, which `rnnc.runtime_graph.GraphPredictor` reports naming the file.
`checked_input` and `checked_lengths` hold one array to what its input takes; every
message names the input, so a caller can collect them (`InputErrors`, one per line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from .errors import DataError
from .runtime_session import MAX_TIMESTEPS, MAX_VOCAB_SIZE, lengths_from_ids

LENGTHS_RULES = ("none", "full", "ids")
MAX_FEATURES = 1 << 24  # a feature size the metadata may claim (allocated per batch)


class Unusable(Exception):
    """The metadata describes something rnnc does not write: why, in words."""


def _unusable(why: str) -> NoReturn:
    raise Unusable(why)


class InputErrors(DataError):
    """Every problem found in the inputs of one call, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def lines(self) -> list[str]:
        return list(self.problems)


@dataclass(frozen=True)
class GraphInput:
    """One input as the metadata describes it: `shape` as the spec writes it (no batch
    axis; None: variable timesteps), `lengths` its rule (`none`, `full` or `ids`)."""

    name: str
    dtype: str  # float32 | int64
    shape: tuple[int | None, ...]
    sequence: bool
    lengths: str = "none"
    vocab_size: int | None = None

    @property
    def token_ids(self) -> bool:
        return self.dtype == "int64"

    @property
    def timesteps(self) -> int | None:
        return self.shape[0] if self.sequence else None

    @property
    def features(self) -> int | None:
        return None if self.token_ids else self.shape[-1]

    @property
    def takes_lengths(self) -> bool:
        return self.lengths != "none"

    @property
    def rank(self) -> int:
        """Axes of the array, batch included."""
        return 1 + len(self.shape)

    def problem(self, shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        """What is wrong with an array of `shape` and `dtype` for this input, or None:
        judged from a header alone (`rnnc predict` asks it before reading any values)."""
        if self.token_ids and dtype.kind not in "iu":
            return f"input '{self.name}': the model takes integer token ids, got {dtype}"
        if not self.token_ids and dtype.kind not in "fiu":
            return f"input '{self.name}': the model takes numbers (float32), got {dtype}"
        if len(shape) != self.rank or (self.features is not None and shape[-1] != self.features):
            return f"input '{self.name}': the model takes {self.layout()}, got shape {list(shape)}"
        return None

    def layout(self) -> str:
        """`[batch, time, 12] float32`, `[batch] int64 ids`: what the input takes."""
        dims = ["batch", *(("time" if self.timesteps is None else str(self.timesteps)),) * self.sequence]
        if not self.token_ids:
            dims.append(str(self.features))
        return f"[{', '.join(dims)}] " + ("int64 ids" if self.token_ids else "float32")


@dataclass(frozen=True)
class GraphOutput:
    """One output: `shape` with `batch` and `time` for the run-time axes, its loss and
    what its values mean (`class probabilities`, `values`...), class names if named."""

    name: str
    shape: tuple[int | str, ...]
    loss: str
    meaning: str
    classes: tuple[str, ...] | None = None
    feedback: dict[str, Any] | None = None
    lengths: str | None = None  # the input whose lengths a per-step output follows, when the metadata says

    @property
    def per_step(self) -> bool:
        return len(self.shape) == 3

    @property
    def units(self) -> int:
        return self.shape[-1] if isinstance(self.shape[-1], int) else 1


def read_input(entry: Any) -> GraphInput:
    """An input entry of the graph metadata; `Unusable` when it is not one rnnc writes."""
    name = _text(entry, "name")
    dtype, shape, rule = _text(entry, "dtype"), entry["shape"], entry.get("lengths", "none")
    if dtype not in ("float32", "int64") or rule not in LENGTHS_RULES or not isinstance(shape, list):
        _unusable(f"its metadata describes input '{name}' as dtype {dtype!r}, shape {shape!r}, lengths {rule!r}")
    sequence = len(shape) == (1 if dtype == "int64" else 2)
    sizes_ok = len(shape) in ((0, 1) if dtype == "int64" else (1, 2)) and all(
        (d is None and sequence and i == 0) or (isinstance(d, int) and not isinstance(d, bool)
                                                and 1 <= d <= (MAX_TIMESTEPS if sequence and i == 0 else MAX_FEATURES))
        for i, d in enumerate(shape))
    if not sizes_ok or (rule != "none" and not sequence) or (rule == "ids" and dtype != "int64"):
        _unusable(f"its metadata describes input '{name}' as {dtype} {shape} with lengths {rule!r}")
    vocab = entry.get("vocab_size")
    if dtype == "int64" and not (isinstance(vocab, int) and 1 <= vocab <= MAX_VOCAB_SIZE):
        _unusable(f"its metadata gives input '{name}' (token ids) the vocab_size {vocab!r}; expected 1 to {MAX_VOCAB_SIZE:,}")
    return GraphInput(name, dtype, tuple(shape), sequence, rule, vocab if dtype == "int64" else None)


def read_output(entry: Any, inputs: Mapping[str, GraphInput]) -> GraphOutput:
    """An output entry of the graph metadata, beside the `inputs` read already."""
    name = _text(entry, "name")
    shape = entry["shape"]
    # a per-step output's time axis: `time`, a number of steps, or what a convolution makes of `time`
    if not (isinstance(shape, list) and len(shape) in (2, 3) and shape[0] == "batch"
            and all((isinstance(d, str) and 0 < len(d) <= 100) or (isinstance(d, int) and d >= 1) for d in shape[1:-1])
            and isinstance(shape[-1], int) and not isinstance(shape[-1], bool) and shape[-1] >= 1):
        _unusable(f"its metadata gives output '{name}' the shape {shape!r}; expected [batch, units] or [batch, time, units]")
    classes = entry.get("classes")
    if classes is not None:
        units = shape[-1]
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            _unusable(f"its metadata's classes of output '{name}' is not a list of names")
        if len(classes) != (2 if units == 1 else units):
            _unusable(f"its metadata names {len(classes)} classes for output '{name}', which has {units} units")
    lengths = entry.get("lengths")
    if lengths is not None and (lengths not in inputs or not inputs[lengths].takes_lengths):
        _unusable(f"its metadata says output '{name}' follows the lengths of '{lengths}', an input without lengths")
    feedback = entry.get("feedback")
    return GraphOutput(name, tuple(shape), _text(entry, "loss"), _text(entry, "meaning"),
                       tuple(classes) if classes is not None else None,
                       feedback if isinstance(feedback, dict) else None, lengths)


# --- one input's checks ---------------------------------------------------------------


def checked_input(inp: GraphInput, value: Any, whole: bool, start: int) -> np.ndarray:
    name = inp.name
    x = np.asarray(value)
    if problem := inp.problem(x.shape, x.dtype):
        raise DataError(problem)
    if inp.token_ids:
        top = inp.vocab_size or 0
        if x.size and (x.min() < 0 or x.max() >= top):
            raise DataError(f"input '{name}': token ids must lie in [0, {top - 1}] (vocab_size {top}), "
                            f"got ids from {x.min()} to {x.max()}")
        x = np.ascontiguousarray(x, dtype=np.int64)
    else:
        with np.errstate(all="ignore"):  # a float64 past float32's range becomes inf, refused below
            x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            where = [int(i) for i in np.argwhere(~np.isfinite(x))[0]]
            where[0] += start
            raise DataError(f"input '{name}': holds NaN, inf or values beyond float32's range "
                            f"(first at {name}{where}); NaN and inf are not data")
    if inp.sequence:
        steps = x.shape[1]
        if whole and inp.timesteps is not None and steps != inp.timesteps:
            raise DataError(f"input '{name}': the model takes {inp.timesteps} timesteps per sequence, got {steps}")
        if whole and steps == 0:
            raise DataError(f"input '{name}': no timesteps")
    return x


def checked_lengths(inp: GraphInput, x: np.ndarray, given: Any, *, lowest: int, whole: bool, start: int) -> np.ndarray:
    batch, steps = x.shape[0], x.shape[1]
    if given is None:
        return lengths_from_ids(x) if inp.lengths == "ids" else np.full(batch, steps, np.int64)
    lengths = np.asarray(given)
    if lengths.dtype.kind not in "iu" or lengths.shape != (batch,):
        raise DataError(f"lengths of input '{inp.name}' must be integers of shape [{batch}], got {lengths.dtype} {list(lengths.shape)}")
    if batch and (lengths.min() < lowest or lengths.max() > steps):
        row = start + int(np.flatnonzero((lengths < lowest) | (lengths > steps))[0])
        what = "its timesteps" if whole else "the chunk's steps"
        raise DataError(f"lengths of input '{inp.name}' must lie in [{lowest}, {steps}] ({what}); "
                        f"row {row} has {lengths[row - start]}")
    return lengths.astype(np.int64)


def _text(entry: Any, key: str) -> str:
    value = entry[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} {value!r} is not a string")
    return value
