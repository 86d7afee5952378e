"""Samples checked against the IR: `Dataset`, `TrainingData` and the checks that make one.

A set of arrays becomes a `Dataset` (`from_arrays`) only after every check a training
step would otherwise trip over later: the input's rank, timesteps, features and dtype,
token ids inside the vocabulary, labels that fit the loss and the model's output,
lengths inside the padded time axis, no NaN or inf, as many labels as inputs, and at
least one sample. Each problem is a one-line `DataError` naming the file. Labels are
normalised here to the one layout the loss wants (see `docs/data.md`), so a backend
never reshapes them. This module reads no file format: the text reader
(`rnnc.data_text`) and the dispatcher that picks a reader for a file (`rnnc.data`)
import it, never the other way round, and `rnnc.data_peek` asks the shape-only
`check_*` rules of a file's headers. Needs numpy only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import ir
from .errors import DataError

if TYPE_CHECKING:
    from .text import Vocab


@dataclass(frozen=True)
class Dataset:
    """Samples ready for a backend.

    `x`: float32 `[N, T, F]`, or int64 token ids `[N, T]`. `y`: the loss's layout:
    float32 shaped like the model's output for binary, categorical and regression
    losses; int64 class ids `[N]` or `[N, T]` for sparse categorical. `lengths`: int64
    `[N]` real steps per sample (from the file, or from `mask_zero` ids), None when every
    step is real. Label values on padded steps are zeroed: they never count.
    """

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None
    origin: str
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def select(self, rows: slice) -> Dataset:
        lengths = None if self.lengths is None else self.lengths[rows]
        return replace(self, x=self.x[rows], y=self.y[rows], lengths=lengths)

    def split(self, fraction: float) -> tuple[Dataset, Dataset]:
        """(first part, last `fraction`), as Keras's `validation_split`: no shuffling."""
        at = split_at(len(self), fraction, self.origin)
        return self.select(slice(0, at)), replace(self.select(slice(at, None)), origin=f"{self.origin} (last {fraction:g})")


def split_at(count: int, fraction: float, origin: str) -> int:
    """Where `validation_split: fraction` cuts `count` samples; an error if a part is empty."""
    at = int(count * (1.0 - fraction))
    if at <= 0 or at >= count:
        raise DataError(
            f"{origin}: validation_split {fraction} of {count} samples leaves "
            f"{'no training' if at <= 0 else 'no validation'} samples"
        )
    return at


@dataclass(frozen=True)
class TrainingData:
    """The spec's data sets; `vocab` is the vocabulary raw text (`data.text`) was encoded with."""

    train: Dataset
    validation: Dataset | None = None
    test: Dataset | None = None
    vocab: Vocab | None = None


def check_readable(path: Path) -> None:
    """Every reader's first check: `path` is a file this process may open."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


# --- checking arrays against the model ----------------------------------------------


def show(shape: tuple[int, ...] | list) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def output_steps(model: ir.Model, steps: np.ndarray | int) -> np.ndarray | int:
    """Timesteps (or per-sample lengths) at the model's output for `steps` at its input:
    only conv1d changes the time axis."""
    out = np.asarray(steps, dtype=np.int64)
    for node in model.nodes:
        if len(node.input_shape) == 3 and isinstance(node.layer, ir.Conv1D):
            conv = node.layer
            if conv.padding == "same":
                out = -(-out // conv.stride)
            else:
                out = np.maximum(0, (out - conv.kernel_size) // conv.stride + 1)
    return int(out) if out.ndim == 0 else out


def _mask_zero(model: ir.Model) -> bool:
    return bool(model.nodes) and isinstance(model.nodes[0].layer, ir.Embedding) and model.nodes[0].layer.mask_zero


def from_arrays(
    model: ir.Model,
    x: np.ndarray,
    y: np.ndarray,
    lengths: np.ndarray | None = None,
    *,
    classes: np.ndarray | list[str] | None = None,
    origin: str = "<arrays>",
) -> Dataset:
    """Check `x`, `y` and `lengths` against `model` and return them normalised; raises a
    one-line `DataError` naming `origin` for the first problem found."""
    x = _inputs(model, np.asarray(x), origin)
    y = np.asarray(y)
    check_sample_counts(x.shape, y.shape, origin)
    lengths = _lengths(model, x, lengths, origin)
    steps = x.shape[1]
    mask = None
    if lengths is not None and model.sequence_output:
        out_lengths = output_steps(model, lengths)
        out_steps = output_steps(model, steps)
        assert isinstance(out_lengths, np.ndarray) and isinstance(out_steps, int)
        mask = np.arange(out_steps)[None, :] < out_lengths[:, None]
    y = _targets(model, y, steps, mask, origin)
    return Dataset(x, y, lengths, origin, _classes(model, classes, origin))


# The shape-only checks (`check_*`) see what an array's header tells, so `rnnc check`
# (rnnc.data_peek) asks them of a file's headers without loading its arrays.


def check_sample_counts(x_shape: tuple[int, ...], y_shape: tuple[int, ...], origin: str) -> None:
    if x_shape[0] == 0:
        raise DataError(f"{origin}: holds no samples")
    if not y_shape or y_shape[0] != x_shape[0]:
        got = "a scalar" if not y_shape else f"{y_shape[0]} samples"
        raise DataError(f"{origin}: x has {x_shape[0]} samples but y has {got}")


def check_input_shape(model: ir.Model, shape: tuple[int, ...], origin: str) -> None:
    spec = model.input
    want = show(["N", *("T" if d is None else d for d in spec.shape)])
    if len(shape) != 1 + len(spec.shape):
        raise DataError(f"{origin}: x has shape {show(shape)}, the spec's input needs {want}")
    if spec.shape[0] is not None and shape[1] != spec.shape[0]:
        raise DataError(f"{origin}: x has {shape[1]} timesteps, the spec's input needs {spec.shape[0]} ({want})")
    if len(spec.shape) > 1 and shape[2:] != tuple(spec.shape[1:]):
        raise DataError(f"{origin}: x has {shape[2]} features per step, the spec's input needs {spec.shape[-1]} ({want})")


def check_input_dtype(model: ir.Model, dtype: np.dtype, origin: str) -> None:
    if model.input.dtype == "int64" and dtype.kind not in "iu":
        raise DataError(f"{origin}: x has dtype {dtype}, the spec's input needs integer token ids (int64)")
    if model.input.dtype != "int64" and dtype.kind not in "fiub":
        raise DataError(f"{origin}: x has dtype {dtype}, the spec's input needs numbers (float32)")


def _inputs(model: ir.Model, x: np.ndarray, origin: str) -> np.ndarray:
    check_input_shape(model, x.shape, origin)
    check_input_dtype(model, x.dtype, origin)
    if model.input.dtype == "int64":
        vocab = model.nodes[0].layer.vocab_size if model.nodes and isinstance(model.nodes[0].layer, ir.Embedding) else None
        if x.size and vocab is not None and (x.min() < 0 or x.max() >= vocab):
            raise DataError(
                f"{origin}: token ids must lie in [0, {vocab - 1}] (vocab_size {vocab}), got ids from {x.min()} to {x.max()}"
            )
        return x.astype(np.int64, copy=False)
    x = x.astype(np.float32, copy=False)
    _finite(x, "x", origin)
    return x


def _finite(values: np.ndarray, name: str, origin: str) -> None:
    # in chunks of rows: a whole-array isfinite would be a temporary as large as a quarter of x
    rows = max(1, (16 << 20) // max(1, values[:1].nbytes)) if values.ndim else 1
    if values.ndim and all(np.isfinite(values[i : i + rows]).all() for i in range(0, len(values), rows)):
        return
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(values[where]) else "inf"
        raise DataError(f"{origin}: {name} holds {int(bad.sum())} NaN or inf values (first: {what} at {name}{list(where)})")


def _lengths(model: ir.Model, x: np.ndarray, lengths: np.ndarray | None, origin: str) -> np.ndarray | None:
    steps = x.shape[1]
    if lengths is None:
        if not _mask_zero(model):
            return None
        positions = np.arange(1, steps + 1)
        lengths = ((x != 0) * positions).max(axis=1) if steps else np.zeros(len(x), np.int64)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            raise DataError(f"{origin}: sample {empty[0]} has no tokens (every id is 0, the padding id of mask_zero)")
        padded, leading = (x == 0).any(axis=1), x[:, 0] == 0
        if leading.any() and (padded == leading).all() and model.nodes[0].layer.mask_zero is True:  # type: ignore[union-attr]
            # Keras's pad_sequences pads at the start by default (the longest sequence
            # alone unpadded): the zeros then count as steps, which can cost accuracy with no
            # error anywhere, so say it, once per file.
            print(f"warning: {origin}: every padded sequence starts with id 0, the padding id of mask_zero: padded at "
                  'the start? rnnc pads at the end (pad_sequences(..., padding="post")); leading zeros count as steps',
                  file=sys.stderr)
        return lengths.astype(np.int64)
    lengths = np.asarray(lengths)
    check_lengths_layout(lengths.shape, lengths.dtype, x.shape[0], origin)
    if lengths.min() < 1 or lengths.max() > steps:
        bad = int(np.flatnonzero((lengths < 1) | (lengths > steps))[0])
        raise DataError(
            f"{origin}: lengths must lie in [1, {steps}] (the padded time axis of x), "
            f"sample {bad} has length {lengths[bad]}"
        )
    if not model.variable_length:
        if (lengths != steps).any():
            raise DataError(
                f"{origin}: lengths shorter than the {steps} timesteps, but the spec's input has a fixed "
                f"length (use input.shape [null, ...] for variable-length sequences)"
            )
        return None
    return lengths.astype(np.int64)


def check_lengths_layout(shape: tuple[int, ...], dtype: np.dtype, samples: int, origin: str) -> None:
    if shape != (samples,):
        raise DataError(f"{origin}: lengths has shape {show(shape)}, expected one length per sample [{samples}]")
    if dtype.kind not in "iu":
        raise DataError(f"{origin}: lengths has dtype {dtype}, expected integers")


def check_target_layout(model: ir.Model, shape: tuple[int, ...], dtype: np.dtype, steps: int, origin: str) -> tuple[tuple[int, ...], int]:
    """(the labels' leading axes, the output's units) once `y`'s shape and dtype fit the
    loss over the model's output."""
    out = model.output_shape
    if len(out) not in (2, 3) or not isinstance(out[-1], int):
        raise DataError(f"{origin}: the model's output {show(out[1:])} is not one that rnnc can train")
    units = out[-1]
    n = shape[0]
    lead = (n, output_steps(model, steps)) if len(out) == 3 else (n,)
    loss = model.loss.type
    what = f"{loss} over the model's output {show(out[1:])}"
    if loss == "sparse_categorical_crossentropy":
        allowed = [lead, (*lead, 1)]
        wanted = f"integer class ids {show(['N', *lead[1:]])}"
    elif loss == "categorical_crossentropy":
        allowed = [(*lead, units)]
        wanted = f"one-hot {show(['N', *lead[1:], units])}"
    else:
        allowed = [(*lead, units)] + ([lead] if units == 1 else [])
        wanted = " or ".join(show(["N", *s[1:]]) for s in reversed(allowed))
    if tuple(shape) not in allowed:
        raise DataError(f"{origin}: y has shape {show(shape)}, {what} needs {wanted}")
    if dtype.kind not in "fiub":
        raise DataError(f"{origin}: y has dtype {dtype}, expected numbers")
    return lead, units


def _targets(model: ir.Model, y: np.ndarray, steps: int, mask: np.ndarray | None, origin: str) -> np.ndarray:
    """`y` in the loss's layout, with label values on padded steps zeroed."""
    lead, units = check_target_layout(model, y.shape, y.dtype, steps, origin)
    loss = model.loss.type
    counted = np.ones(lead, bool) if mask is None else mask
    if loss == "sparse_categorical_crossentropy":
        labels = y.reshape(lead)
        real = labels[counted]
        if labels.dtype.kind == "f":
            _finite(real, "y", origin)
            if (real != np.round(real)).any():
                raise DataError(f"{origin}: y must hold integer class ids for sparse_categorical_crossentropy, got fractions")
        if real.size and (real.min() < 0 or real.max() >= units):
            raise DataError(f"{origin}: y holds class ids from {real.min():g} to {real.max():g}, the model has {units} classes [0, {units - 1}]")
        return np.where(counted, labels, 0).astype(np.int64)
    values = y.reshape((*lead, units)).astype(np.float32)
    real = values[counted]
    _finite(real, "y", origin)
    if loss in ("binary_crossentropy", "categorical_crossentropy") and real.size and (real.min() < 0 or real.max() > 1):
        raise DataError(f"{origin}: y holds values from {real.min():g} to {real.max():g}; {loss} needs labels in [0, 1]")
    if loss == "categorical_crossentropy" and real.size:
        sums = real.sum(axis=-1)
        if (np.abs(sums - 1) > 1e-3).any():
            row = int(np.flatnonzero(np.abs(sums - 1) > 1e-3)[0])
            raise DataError(f"{origin}: one-hot labels must sum to 1 per sample; label {row} sums to {sums[row]:g}")
    return np.where(counted[..., None], values, 0).astype(np.float32)


def _classes(model: ir.Model, classes: np.ndarray | list[str] | None, origin: str) -> tuple[str, ...] | None:
    if classes is None:
        return None
    names = np.asarray(classes)
    check_classes_layout(model, names.shape, names.dtype, origin)
    return tuple(str(name) for name in names)


def check_classes_layout(model: ir.Model, shape: tuple[int, ...], dtype: np.dtype, origin: str) -> None:
    if len(shape) != 1 or dtype.kind not in "US":
        raise DataError(f"{origin}: classes must be a 1-D array of names, got {dtype} {show(shape)}")
    units = model.output_shape[-1]
    wanted = 2 if model.loss.type == "binary_crossentropy" and units == 1 else units
    if shape[0] != wanted:
        raise DataError(f"{origin}: classes names {shape[0]} classes, the model outputs {wanted}")
