"""What `rnnc predict` writes: a CSV table a person can read, or the raw arrays.

CSV has a header and one row per input row, in order: the input's keys first (its
text, a series' date), then what the model says, per the `output` metadata. A
classifier: `label,probability` (the predicted class and its probability), then
`p_<class>` for each class; the probabilities are probabilities whatever the model
outputs (logits, log-probabilities). One sigmoid unit is the probability of class 1:
its one column is `p_<class 1>`, as the `.npy` keeps that one number. Several sigmoid
units (multi-label): `p_<label>` per unit. Regression: one column per unit, named after
the spec's targets, else `y` (`y_0`, `y_1`, ... for several). Classes are named by the
model's `classes`, else by index. A per-step output covers each row's real steps only:
in the `wide` format a cell holds one value per step, separated by spaces; `long` has a
row per step, `row,step,...`. `.npy` (`y`) and `.npz` (`y`, and `lengths` for a
variable-length model) keep the raw outputs. Every writer counts rows: a model that
gives more or fewer than the input holds is an `ArtifactError` naming the model.
"""

from __future__ import annotations

import contextlib
import csv
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

from rnnc.errors import ArtifactError, DataError, RnncError
from rnnc.runtime import Predictor

PROBABILITY = "%.6g"  # six digits are plenty for a person; -o .npy keeps every bit
VALUE = "%.9g"  # enough to round-trip float32


@dataclass(frozen=True)
class Columns:
    """Named cells for output units: `cells(y [n, units])` gives `[n, len(names)]` strings."""

    names: tuple[str, ...]
    cells: Callable[[np.ndarray], np.ndarray]


def columns_for(predictor: Predictor, targets: Sequence[str] | None = None) -> Columns:
    return output_columns(output_units(predictor), predictor.metadata.get("output", ""), predictor.classes, targets)


def output_columns(units: int, meaning: str, classes: Sequence[str] | None, targets: Sequence[str] | None = None,
                   name: str | None = None) -> Columns:
    """The columns of one output of `units` units whose values mean `meaning` (the
    metadata's words). A graph's output `name` prefixes them (`churn_label`, `churn_p_yes`)
    and names a regression's (`level`, or `level_0`, `level_1`), as v1's `y` does."""
    prefix = f"{name}_" if name else ""
    if "of each label" in meaning:  # binary cross-entropy over several units: independent labels
        names = classes or [str(i) for i in range(units)]
        return Columns(tuple(f"{prefix}p_{n}" for n in names), lambda y: np.char.mod(PROBABILITY, probabilities(y, meaning)))
    if not is_regression(meaning, classes):
        return _classifier(classes or [str(i) for i in range(max(units, 2))], units == 1, meaning, prefix)
    if targets is not None and len(targets) == units:
        names = tuple(targets)
    else:
        value = name or "y"
        names = (value,) if units == 1 else tuple(f"{value}_{i}" for i in range(units))
    return Columns(names, lambda y: np.char.mod(VALUE, y))


def _classifier(classes: Sequence[str], binary: bool, meaning: str, prefix: str = "") -> Columns:
    named = np.asarray(classes, dtype=object)

    def cells(y: np.ndarray) -> np.ndarray:
        probs = class_probabilities(y, meaning)
        best = probs.argmax(-1)  # one sigmoid unit: class 1 when p > 0.5, as the metrics count it
        shown = probs[:, 1:] if binary else probs
        chosen = probs[np.arange(len(probs)), best]
        return np.column_stack([named[best], np.char.mod(PROBABILITY, chosen), np.char.mod(PROBABILITY, shown)])

    names = ("label", "probability", *(f"p_{c}" for c in (classes[1:] if binary else classes)))
    return Columns(tuple(prefix + n for n in names), cells)


def regression(predictor: Predictor) -> bool:
    """Whether the model outputs values rather than classes (a model whose metadata says
    neither is a classifier when it names classes)."""
    return is_regression(predictor.metadata.get("output", ""), predictor.classes)


def is_regression(meaning: str, classes: Sequence[str] | None) -> bool:
    """Whether an output whose values mean `meaning` is a regression's."""
    return "class" not in meaning and "label" not in meaning and (classes is None or "values" in meaning)


def output_units(predictor: Predictor) -> int:
    units = predictor.session.get_outputs()[0].shape[-1]
    return units if isinstance(units, int) else 1


def per_step(predictor: Predictor) -> bool:
    return len(predictor.session.get_outputs()[0].shape) == 3


def probabilities(y: np.ndarray, meaning: str) -> np.ndarray:
    """The model's outputs as probabilities, whatever the metadata's `output` says they
    are: probabilities, log-probabilities, or logits (softmax over classes, else sigmoid)."""
    from rnnc.metrics import probabilities_from_logits

    y = y.astype(np.float64)
    if "log-probabilities" in meaning:
        return np.exp(y)
    if "logits" in meaning:
        return probabilities_from_logits(y, multiclass="class logits" in meaning)
    return y


def class_probabilities(y: np.ndarray, meaning: str) -> np.ndarray:
    """`[N, C]` class probabilities from the model's output `[N, U]`; one sigmoid unit
    becomes two columns (class 0, class 1)."""
    probs = probabilities(y, meaning)
    return np.concatenate([1.0 - probs, probs], axis=-1) if probs.shape[-1] == 1 else probs


class Counted:
    """The row count every writer holds to: exactly `count`, the input's rows."""

    def __init__(self, count: int, model: str):
        self.count, self.model, self.done = count, model, 0

    def _take(self, n: int) -> int:
        if self.done + n > self.count:
            raise ArtifactError(f"{self.model}: gave {self.done + n} or more output rows for {self.count} input rows")
        start, self.done = self.done, self.done + n
        return start

    def finish(self) -> None:
        if self.done != self.count:
            raise ArtifactError(f"{self.model}: gave {self.done} output rows for {self.count} input rows")

    def close(self) -> None:
        pass


class CsvWriter(Counted):
    """The table, written batch by batch; `long`: one row per real step of a per-step output."""

    def __init__(self, handle: IO[str], columns: Columns, count: int, model: str, *,
                 keys: tuple[Sequence[str], Sequence[tuple[str, ...]]] | None = None, long: bool = False):
        super().__init__(count, model)
        self.writer = csv.writer(handle, lineterminator="\n")
        self.columns, self.long = columns, long
        self.key_names, self.key_rows = keys if keys is not None else ((), None)

    def write(self, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        start = self._take(len(y))
        if start == 0:  # the header waits for the first rows: a bad input prints nothing
            self.writer.writerow([*(("row", "step") if self.long else ()), *self.key_names, *self.columns.names])
        keys = [self.key_rows[start + i] if self.key_rows is not None else () for i in range(len(y))]
        if y.ndim == 2:
            for key, cells in zip(keys, self.columns.cells(y), strict=True):
                self.writer.writerow([*key, *cells])
            return
        n, steps, units = y.shape
        cells = self.columns.cells(y.reshape(n * steps, units)).reshape(n, steps, -1)
        real = lengths if lengths is not None else np.full(n, steps)
        for i, (key, length) in enumerate(zip(keys, real, strict=True)):
            if self.long:
                self.writer.writerows([start + i, t, *key, *cells[i, t]] for t in range(length))
            else:
                self.writer.writerow([*key, *(" ".join(cells[i, :length, c]) for c in range(cells.shape[2]))])


class ArrayWriter(Counted):
    """`y` as `.npy`, or `.npz` with `y` and, for a variable-length model, the `lengths`
    it was fed; written batch by batch (the header needs the row shape of the first)."""

    def __init__(self, handle: IO[bytes], count: int, model: str, *, npz: bool, lengths: bool):
        super().__init__(count, model)
        self.archive = zipfile.ZipFile(handle, "w", allowZip64=True) if npz else None
        self.handle = self.archive.open("y.npy", "w", force_zip64=True) if self.archive else handle
        self.lengths: list[np.ndarray] | None = [] if npz and lengths else None
        self.row: tuple[int, ...] | None = None

    def write(self, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self._take(len(y))
        y = np.ascontiguousarray(y, dtype=np.float32)
        if self.row is None:
            self.row = y.shape[1:]
            header = {"descr": np.lib.format.dtype_to_descr(y.dtype), "fortran_order": False, "shape": (self.count, *self.row)}
            np.lib.format.write_array_header_2_0(self.handle, header)
        elif y.shape[1:] != self.row:
            raise ArtifactError(f"{self.model}: gave outputs of shape {list(y.shape[1:])} after {list(self.row)}")
        self.handle.write(y.tobytes())
        if self.lengths is not None:
            self.lengths.append(np.asarray(lengths, dtype=np.int64))

    def finish(self) -> None:
        super().finish()
        if self.archive is None:
            return
        self.handle.close()
        if self.lengths is not None:
            with self.archive.open("lengths.npy", "w") as member:
                np.lib.format.write_array(member, np.concatenate(self.lengths), allow_pickle=False)
        self.archive.close()
        self.archive = None

    def close(self) -> None:
        """After a failure: let go of the archive quietly (the file is thrown away)."""
        if self.archive is not None:
            with contextlib.suppress(OSError, ValueError):
                self.handle.close()
                self.archive.close()


def partly_written(err: RnncError, done: int, count: int) -> RnncError:
    """`err`, its last line saying that `done` of `count` rows were written before it
    (they are on the reader's screen or in the piped file); each line of a DataError kept."""
    after = f"; {done} of {count} rows were written before this error"
    if isinstance(err, DataError):
        from rnnc.runtime_inputs import InputErrors

        return InputErrors([*err.lines()[:-1], err.lines()[-1] + after])
    return type(err)(f"{err}{after}")
