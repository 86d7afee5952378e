"""A graph's training data (spec version 2): `.npz` arrays checked into a `GraphDataset`.

The arrays are named after the spec (`rnnc.graph_layout`: inputs, `<input>_lengths`,
one array of targets per output, `<output>_classes`). Their layout is checked first,
every problem at once; then their values, the first problem found: floats finite,
token ids inside each embedding's vocabulary, lengths inside the padded time axis
(0 allowed: an empty sequence has the zero state and zero attention), class ids and
labels that fit each output's loss on its real steps. Lengths an input takes but the
file leaves out come from the ids where a `mask_zero` embedding reads it (after the
last non-zero id), else every step is real. A feedback output without its array of
targets gets its input shifted left by one step, the last real step unscored. Each
problem is a one-line `DataError` naming the file and the array. `adapt_normalization`
computes what a `normalization` layer stores, from the training set. `rnnc.data` reads
the files and hands their arrays here. Needs numpy only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from . import ir
from .artifacts import load_weights_metadata
from .dataset import split_at
from .errors import ArtifactError, DataError
from .graph_layout import array_roles, classes_wanted, flow, input_steps, layout_problems, output_node
from .metadata import lengths_rules


@dataclass(frozen=True)
class GraphDataset:
    """Samples of a graph, ready for a backend, each dict keyed by the spec's names.

    `inputs`: float32 `[N, T, F]` / `[N, F]`, int64 ids `[N, T]` / `[N]`. `lengths`:
    int64 `[N]` for each input that has them (given, or from `mask_zero` ids); an input
    without is real at every step. `targets`: each output's loss layout, as v1's `y`.
    `masks`: bool `[N, T]` of the steps that count, for per-step outputs where some do
    not (lengths, a shifted feedback target); targets are zero where a mask is False.
    `classes`: the names of an output's classes, where the file gives them.
    """

    inputs: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    origin: str
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def select(self, rows: slice) -> GraphDataset:
        pick = lambda arrays: {k: v[rows] for k, v in arrays.items()}  # noqa: E731
        return replace(self, inputs=pick(self.inputs), lengths=pick(self.lengths), targets=pick(self.targets), masks=pick(self.masks))

    def split(self, fraction: float) -> tuple[GraphDataset, GraphDataset]:
        """(first part, last `fraction`), as Keras's `validation_split`: no shuffling."""
        at = split_at(len(self), fraction, self.origin)
        return self.select(slice(0, at)), replace(self.select(slice(at, None)), origin=f"{self.origin} (last {fraction:g})")


def graph_dataset(model: ir.Model, arrays: Mapping[str, np.ndarray], origin: str = "<arrays>") -> GraphDataset:
    """Check `arrays` (named as in a data file) against the graph `model` and return them
    normalised; a `DataError` of every layout problem, else of the first value problem."""
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    problems = layout_problems(model, {name: (a.shape, a.dtype) for name, a in arrays.items()}, origin)
    if problems:
        raise DataError("\n".join(p.message for p in problems))
    inputs = {inp.name: _input_values(model, inp, arrays[inp.name], origin) for inp in model.inputs}
    steps = input_steps(model, {name: a.shape for name, a in inputs.items()})
    lengths = _lengths(model, inputs, arrays, steps, origin)
    values = flow(model, steps, lengths)
    targets, masks = {}, {}
    for out in model.outputs:
        node = output_node(model, out)
        out_steps, out_lengths = values[node.key]
        mask = None if out_lengths is None or out_steps is None else np.arange(out_steps)[None, :] < out_lengths[:, None]
        if out.name in arrays:
            target, name = arrays[out.name], f"'{out.name}'"
        else:
            assert out.feedback is not None  # the layout requires the targets otherwise
            target, mask = _shifted(inputs[out.feedback.input], lengths.get(out.feedback.input), mask)
            name = f"'{out.feedback.input}' shifted (the targets of output '{out.name}')"
        targets[out.name] = _targets(out, node, target, out_steps, mask, name, origin)
        if mask is not None:
            masks[out.name] = mask
    classes = {}
    for name, role in array_roles(model, arrays).items():
        if role.kind == "classes" and name in arrays:
            classes[role.of] = tuple(str(c) for c in arrays[name])
    return GraphDataset(inputs, lengths, targets, masks, origin, classes)


def _finite(values: np.ndarray, name: str, origin: str) -> None:
    # in chunks of rows: a whole-array isfinite would be a temporary as large as a quarter of x
    rows = max(1, (16 << 20) // max(1, values[:1].nbytes)) if values.ndim else 1
    if values.ndim and all(np.isfinite(values[i : i + rows]).all() for i in range(0, len(values), rows)):
        return
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(values[where]) else "inf"
        raise DataError(f"{origin}: {name} holds {int(bad.sum())} NaN or inf values (first: {what} at {list(where)})")


def _vocab(model: ir.Model, name: str) -> int | None:
    """The smallest vocabulary of the embeddings reading input `name`."""
    sizes = [n.layer.vocab_size for n in model.nodes if isinstance(n.layer, ir.Embedding) and n.sources[0] == name]
    return min(sizes) if sizes else None


def _input_values(model: ir.Model, inp: ir.Input, values: np.ndarray, origin: str) -> np.ndarray:
    if inp.dtype == "int64":
        vocab = _vocab(model, inp.name)
        if values.size and vocab is not None and (values.min() < 0 or values.max() >= vocab):
            raise DataError(f"{origin}: '{inp.name}' holds token ids from {values.min()} to {values.max()}; "
                            f"they must lie in [0, {vocab - 1}] (vocab_size {vocab})")
        return values.astype(np.int64, copy=False)
    values = values.astype(np.float32, copy=False)
    _finite(values, f"'{inp.name}'", origin)
    return values


def _lengths(model: ir.Model, inputs: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray],
             steps: Mapping[str, int], origin: str) -> dict[str, np.ndarray]:
    """The lengths of each input that takes them: the file's, else from ids (`ids`)."""
    out = {}
    for name, rule in lengths_rules(model).items():
        inp = next(i for i in model.inputs if i.name == name)
        given = arrays.get(inp.lengths_name)
        if given is not None:
            if given.size and (given.min() < 0 or given.max() > steps[name]):
                bad = int(np.flatnonzero((given < 0) | (given > steps[name]))[0])
                raise DataError(f"{origin}: '{inp.lengths_name}' must lie in [0, {steps[name]}] (the padded time axis of "
                                f"'{name}'), sample {bad} has length {given[bad]}")
            out[name] = given.astype(np.int64)
        elif rule == "ids":
            ids = inputs[name]
            positions = np.arange(1, ids.shape[1] + 1)
            out[name] = ((ids != 0) * positions).max(axis=1, initial=0).astype(np.int64)
            padded, leading = (ids == 0).any(axis=1), ids[:, 0] == 0
            if leading.any() and (padded == leading).all():  # as v1 says it (rnnc.dataset._lengths)
                print(f"warning: {origin}: every padded sequence of '{name}' starts with id 0, the padding id of mask_zero: "
                      'padded at the start? rnnc pads at the end (pad_sequences(..., padding="post")); leading zeros count '
                      "as steps", file=sys.stderr)
    return out


def _shifted(ids: np.ndarray, lengths: np.ndarray | None, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """What a feedback output predicts from input `ids`: the next step's id; the last
    real step (and every padded one) has no next id and does not count."""
    target = np.zeros_like(ids)
    target[:, :-1] = ids[:, 1:]
    real = ids.shape[1] if lengths is None else lengths[:, None]
    scored = np.arange(ids.shape[1])[None, :] < real - 1
    scored = np.broadcast_to(scored, ids.shape)
    return target, scored if mask is None else scored & mask


def _targets(out: ir.Output, node: ir.Node, y: np.ndarray, steps: int | None, mask: np.ndarray | None,
             name: str, origin: str) -> np.ndarray:
    """`y` in the loss's layout (as v1's `y`), its values on uncounted steps zeroed."""
    units = node.output_shape[-1]
    assert isinstance(units, int)
    lead = (y.shape[0], steps) if len(node.output_shape) == 3 else (y.shape[0],)
    counted = np.ones(lead, bool) if mask is None else mask
    loss = out.loss.type
    if loss == "sparse_categorical_crossentropy":
        labels = y.reshape(lead)
        real = labels[counted]
        if labels.dtype.kind == "f":
            _finite(real, name, origin)
            if (real != np.round(real)).any():
                raise DataError(f"{origin}: {name} must hold integer class ids for sparse_categorical_crossentropy, got fractions")
        if real.size and (real.min() < 0 or real.max() >= units):
            raise DataError(f"{origin}: {name} holds class ids from {real.min():g} to {real.max():g}, "
                            f"output '{out.name}' has {units} classes [0, {units - 1}]")
        return np.where(counted, labels, 0).astype(np.int64)
    values = y.reshape((*lead, units)).astype(np.float32)
    real = values[counted]
    _finite(real, name, origin)
    if loss in ("binary_crossentropy", "categorical_crossentropy") and real.size and (real.min() < 0 or real.max() > 1):
        raise DataError(f"{origin}: {name} holds values from {real.min():g} to {real.max():g}; {loss} needs labels in [0, 1]")
    if loss == "categorical_crossentropy" and real.size:
        sums = real.sum(axis=-1)
        if (np.abs(sums - 1) > 1e-3).any():
            row = int(np.flatnonzero(np.abs(sums - 1) > 1e-3)[0])
            raise DataError(f"{origin}: {name}: one-hot labels must sum to 1 per sample; label {row} sums to {sums[row]:g}")
    return np.where(counted[..., None], values, 0).astype(np.float32)


# --- normalization ------------------------------------------------------------------


ADAPT_BYTES = 32 << 20  # float32 bytes of normalization inputs per chunk of rows


class Batched(Protocol):
    """Rows handed out in order, `size` at a time, as `GraphDataset`s (a data set left
    on disk: `rnnc.rows_dataset.RowsDataset`)."""

    origin: str

    def __len__(self) -> int: ...

    def batches(self, size: int) -> Iterator[Any]: ...


def adapt_normalization(model: ir.Model, data: GraphDataset | Batched,
                        shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """`layers.<i>.mean` and `.variance` of every normalization layer, from its input in
    `data` as Keras's `Normalization.adapt`: per feature, over the real steps only
    (padding does not count), accumulated in float64, population variance (ddof 0).
    Two passes over chunks of rows whose count follows from the inputs' padded shapes
    alone (`shapes`, each input's `[N, ...]`; a `GraphDataset` knows its own), so data
    in memory and the same rows on disk give the same numbers to the bit."""
    nodes = [node for node in model.nodes if isinstance(node.layer, ir.Normalization)]
    if not nodes:
        return {}
    if isinstance(data, GraphDataset):
        shapes = {name: value.shape for name, value in data.inputs.items()}
        chunks = lambda size: (data.select(slice(i, i + size)) for i in range(0, len(data), size))  # noqa: E731
    else:
        assert shapes is not None
        chunks = data.batches
    sources = sorted({node.sources[0] for node in nodes})
    row_bytes = sum(4 * int(np.prod(shapes[name][1:])) for name in sources)
    size = max(1, ADAPT_BYTES // max(1, row_bytes))
    count = {name: 0 for name in sources}
    sums = {name: np.zeros(shapes[name][-1]) for name in sources}
    for chunk in chunks(size):
        for name in sources:
            rows = _real_rows(chunk, name)
            count[name] += rows.shape[0]
            sums[name] += rows.sum(axis=0)
    for name in sources:
        if count[name] == 0:
            node = next(n for n in nodes if n.sources[0] == name)
            raise DataError(f"{data.origin}: '{name}' has no real steps to adapt normalization {node.key} to")
    means = {name: sums[name] / count[name] for name in sources}
    squares = {name: np.zeros_like(means[name]) for name in sources}
    for chunk in chunks(size):
        for name in sources:
            squares[name] += np.square(_real_rows(chunk, name) - means[name]).sum(axis=0)
    out: dict[str, np.ndarray] = {}
    for node in nodes:
        source = node.sources[0]
        out[f"layers.{node.index}.mean"] = means[source].astype(np.float32)
        out[f"layers.{node.index}.variance"] = (squares[source] / count[source]).astype(np.float32)
    return out


def _real_rows(data: GraphDataset, source: str) -> np.ndarray:
    """Input `source`'s values as float64 rows of features, its padded steps left out."""
    values = data.inputs[source]
    if values.ndim == 3:
        lengths = data.lengths.get(source)
        if lengths is not None:
            values = values[np.arange(values.shape[1])[None, :] < lengths[:, None]]
    return values.reshape(-1, values.shape[-1]).astype(np.float64)


# --- class names in a run's weights file --------------------------------------------

OUTPUT_CLASSES = "output_classes"  # weights metadata: a graph's class names, a JSON object by output


def stored_output_classes(path: str | os.PathLike[str]) -> dict[str, list[str]] | None:
    """The class names per output that `rnnc train` recorded for a graph in its weights
    file (`OUTPUT_CLASSES`), or None when the data named none."""
    text = load_weights_metadata(path).get(OUTPUT_CLASSES)
    if text is None:
        return None
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, dict) or not all(isinstance(v, list) for v in names.values()):
        raise ArtifactError(f"{path}: the {OUTPUT_CLASSES} in its metadata are not a JSON object of name lists")
    return {str(k): [str(n) for n in v] for k, v in names.items()}
