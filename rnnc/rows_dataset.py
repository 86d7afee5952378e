"""A data set left in its row source (`rnnc.rows`): checked chunk by chunk, gathered batch by batch.

`rows_dataset` checks every row of a `Rows` against the model as a whole file is checked
(`rnnc.dataset.from_arrays` for a v1 chain, `rnnc.graph_data.graph_dataset` for a v2
graph), one chunk of about 64 MB at a time, so a source larger than memory is checked
in bounded memory; a problem names the file and the rows of the chunk it is in. It
keeps only what is small and needed whole: each row's lengths (training's `tbptt` cuts
by them, and a `mask_zero` input's are computed once here) and the class names.
`RowsDataset.batch` then gathers rows by index and returns them as the in-memory data
set's own type (`Dataset`, `GraphDataset`), every sequence padded back with zeros to
the source's full time axis, or, where the model never reads past a sequence's length,
cut to the batch's longest (`cuts_to_longest`, as the trainer cuts a batch in memory):
the batch is the same arrays that slicing the whole file loaded in memory gives, so
training from disk takes exactly the steps that training in memory takes. `npy_dir_dataset` opens a directory of `.npy` files this way,
`npz_rows_dataset` a `.npz` (in place, or inflated into the data cache when compressed).
Needs numpy only.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import ir
from .dataset import Dataset, from_arrays, split_at
from .errors import DataError
from .graph_data import GraphDataset, graph_dataset
from .graph_layout import layout_problems, output_node
from .metadata import lengths_rules, lengths_sources
from .npz_spill import spill_npz
from .rows import NpyDirRows, Rows, chunk_rows, chunks, stored_npz


@dataclass(frozen=True)
class RowsDataset:
    """Rows `start:stop` of a checked source. `lengths`: a chain's per-row lengths
    (None: every step is real) or a graph's by input, for the whole source."""

    model: ir.Model
    rows: Rows
    origin: str
    start: int
    stop: int
    lengths: np.ndarray | dict[str, np.ndarray] | None
    classes: tuple[str, ...] | dict[str, tuple[str, ...]] | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def steps(self) -> int:
        """The source's full time axis of the chain's `x` (0 when it has none)."""
        shape = self.rows.columns["x"].shape
        return shape[1] if len(shape) > 1 else 0

    def row_lengths(self) -> np.ndarray | dict[str, np.ndarray] | None:
        """This part's lengths (a chain's array, or a graph's by input)."""
        if isinstance(self.lengths, dict):
            return {k: v[self.start : self.stop] for k, v in self.lengths.items()}
        return None if self.lengths is None else self.lengths[self.start : self.stop]

    def select(self, rows: slice) -> RowsDataset:
        start, stop, _ = rows.indices(len(self))
        return replace(self, start=self.start + start, stop=self.start + max(start, stop))

    def split(self, fraction: float) -> tuple[RowsDataset, RowsDataset]:
        """(first part, last `fraction`), as Keras's `validation_split`: no shuffling."""
        at = split_at(len(self), fraction, self.origin)
        return self.select(slice(0, at)), replace(self.select(slice(at, None)), origin=f"{self.origin} (last {fraction:g})")

    def batch(self, index: np.ndarray) -> Dataset | GraphDataset:
        """Rows `index` (of this part) as the in-memory data set's type: full width, or
        cut to their longest sequence where the model never reads past one (`cuts_to_longest`)."""
        at = self.start + np.asarray(index, dtype=np.int64)
        arrays = self.rows.take(at)
        if not cuts_to_longest(self.model):
            arrays = _full_width(self.rows, arrays)
        if self.model.graph is not None:
            assert isinstance(self.lengths, dict)
            if self.model.training.tbptt is not None:
                arrays = common_width(self.model, arrays)
            for out, source in cut_targets(self.model).items():  # a per-step target at its input's cut steps
                if out in arrays and source in arrays:
                    arrays[out] = arrays[out][:, : arrays[source].shape[1]]
            arrays.update(self.rows.constants)
            for name, lengths in self.lengths.items():  # given lengths win: ids are not read again
                arrays[_input(self.model, name).lengths_name] = lengths[at]
            return graph_dataset(self.model, arrays, self.origin)
        assert not isinstance(self.lengths, dict)
        lengths = None if self.lengths is None else self.lengths[at]
        return from_arrays(self.model, arrays["x"], arrays["y"], lengths, origin=self.origin)

    def batches(self, size: int) -> Iterator[Dataset | GraphDataset]:
        """The part in order, `size` rows at a time (evaluation, normalization)."""
        for begin in range(0, len(self), size):
            yield self.batch(np.arange(begin, min(len(self), begin + size)))


def cuts_to_longest(model: ir.Model) -> bool:
    """Whether a batch may be cut to its longest sequence without changing a result: a
    chain of variable length or a graph, with no conv1d (whose windows would see the
    cut's zeros for the stored padding). Every other layer reads a sequence only up to
    its lengths (recurrent layers, pools and attention mask the padded steps; dense and
    the merges work step by step), and a per-step output's padded steps count in no
    loss or metric, so its targets are cut with it (`cut_targets`). A graph's sequence
    inputs are cut each to its own longest, or with `training.tbptt` (which cuts them
    into chunks at the same steps) all to the longest of them (`common_width`)."""
    if any(isinstance(node.layer, ir.Conv1D) for node in model.nodes):
        return False
    return model.graph is not None or model.variable_length


def cut_targets(model: ir.Model) -> dict[str, str]:
    """For a graph cut to its longest sequences: each per-step output whose steps are an
    input's (`rnnc.metadata.lengths_sources`), by name, with that input's name. Its
    targets and mask are cut where the input is."""
    if model.graph is None or not cuts_to_longest(model):
        return {}
    sources = lengths_sources(model)
    follows = {}
    for out in model.outputs:
        node = output_node(model, out)
        if len(node.output_shape) == 3 and node.key in sources:
            follows[out.name] = sources[node.key]
    return follows


def common_width(model: ir.Model, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A graph's sequence inputs among `arrays`, each cut to its own longest, padded with
    zeros to the longest of them: `training.tbptt` cuts them all at the same steps."""
    names = [inp.name for inp in model.inputs if inp.sequence and inp.name in arrays]
    if not names:
        return arrays
    width = max(arrays[name].shape[1] for name in names)
    return {**arrays, **{name: _padded(arrays[name], width) for name in names}}


def _padded(array: np.ndarray, steps: int) -> np.ndarray:
    """`array` with zeros after its time axis (axis 1) up to `steps`, or itself."""
    if array.shape[1] >= steps:
        return array
    full = np.zeros((array.shape[0], steps, *array.shape[2:]), dtype=array.dtype)
    full[:, : array.shape[1]] = array
    return full


def _input(model: ir.Model, name: str) -> ir.Input:
    return next(i for i in model.inputs if i.name == name)


def _full_width(rows: Rows, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`take`'s arrays with every cut sequence padded back with zeros to the source's
    full time axis, as a padded file holds it."""
    out = dict(arrays)
    for name, column in rows.columns.items():
        if column.lengths is not None:
            out[name] = _padded(out[name], column.shape[1])
    return out


# --- opening and checking a source --------------------------------------------------


def rows_dataset(model: ir.Model, rows: Rows) -> RowsDataset:
    """`rows` checked against `model` in chunks: a `DataError` for the first problem,
    naming the file and the chunk's rows; a graph's layout problems all at once first."""
    if len(rows) == 0:
        raise DataError(f"{rows.origin}: holds no samples")
    if model.graph is not None:
        return _graph_rows(model, rows)
    if missing := [name for name in ("x", "y") if name not in rows.columns]:
        have = ", ".join(sorted(rows.columns)) or "none"
        raise DataError(f"{rows.origin}: no array '{missing[0]}' (arrays: {have}); it needs x, y and optionally lengths, classes")
    size = chunk_rows(rows)
    kept: list[np.ndarray] = []
    classes = rows.constants.get("classes")
    dataset = None
    for start, arrays in chunks(rows, size):
        arrays = _full_width(rows, arrays)
        where = f"{rows.origin} (rows {start}-{start + len(arrays['x']) - 1})" if len(rows) > size else rows.origin
        with _quiet(start > 0):  # mask_zero's warning about leading zeros: once, not per chunk
            dataset = from_arrays(model, arrays["x"], arrays["y"], arrays.get("lengths"), classes=classes if start == 0 else None,
                                  origin=where)
        if dataset.lengths is not None:
            kept.append(dataset.lengths)
        if start == 0:
            classes = dataset.classes
    assert dataset is not None
    lengths = np.concatenate(kept) if kept else None
    return RowsDataset(model, rows, rows.origin, 0, len(rows), lengths, classes if isinstance(classes, tuple) else None)


def _graph_rows(model: ir.Model, rows: Rows) -> RowsDataset:
    headers = {name: (c.shape, c.dtype) for name, c in rows.columns.items()}
    headers.update({name: (a.shape, a.dtype) for name, a in rows.constants.items()})
    if problems := layout_problems(model, headers, rows.origin):
        raise DataError("\n".join(p.message for p in problems))
    size = chunk_rows(rows)
    kept: dict[str, list[np.ndarray]] = {}
    classes: dict[str, tuple[str, ...]] = {}
    for start, arrays in chunks(rows, size):
        arrays = _full_width(rows, arrays)
        count = len(next(iter(arrays.values())))
        where = f"{rows.origin} (rows {start}-{start + count - 1})" if len(rows) > size else rows.origin
        with _quiet(start > 0):
            dataset = graph_dataset(model, {**arrays, **rows.constants}, where)
        for name, lengths in dataset.lengths.items():
            kept.setdefault(name, []).append(lengths)
        classes = dataset.classes
    return RowsDataset(model, rows, rows.origin, 0, len(rows), {k: np.concatenate(v) for k, v in kept.items()}, classes)


@contextlib.contextmanager
def _quiet(on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def sequence_pairs(model: ir.Model, names: set[str]) -> dict[str, str]:
    """Which arrays of a padded data file are sequences cut by which lengths array: a
    chain's `x` (and a per-step `y`, when no conv1d changes the time axis) by `lengths`;
    a graph's sequence inputs by `<input>_lengths`, where the file has them."""
    if model.graph is not None:
        rules = lengths_rules(model)
        return {i.name: i.lengths_name for i in model.inputs if i.name in rules and i.lengths_name in names and i.sequence}
    if "lengths" not in names or not model.variable_length:
        return {}
    pairs = {"x": "lengths"}
    if model.sequence_output and not any(isinstance(n.layer, ir.Conv1D) for n in model.nodes):
        pairs["y"] = "lengths"
    return pairs


def npy_dir_dataset(model: ir.Model, path: str | Path, origin: str | None = None) -> RowsDataset:
    """A directory of `.npy` files (`x.npy`, `y.npy`, `lengths.npy`, `classes.npy`; a
    graph's arrays by name) as a checked `RowsDataset`, read by offset, never whole."""
    plain = NpyDirRows(path, origin=origin)
    rows = NpyDirRows(path, sequence_pairs(model, set(plain.columns)), origin=origin)
    plain.close()
    return rows_dataset(model, rows)


def npz_rows_dataset(model: ir.Model, path: str | Path) -> RowsDataset | None:
    """A `.npz` as a checked `RowsDataset`, never loaded whole: an uncompressed one
    (`np.savez`) has its rows read in place, a compressed one's members are inflated
    once into the data cache (`rnnc.npz_spill`) and read from there; None for an
    archive that is not a zip of `.npy` members (its reader says what is wrong)."""
    files = stored_npz(Path(path), str(path))
    if files is None:
        files = spill_npz(Path(path))
    if files is None:
        return None
    return rows_dataset(model, NpyDirRows(path, sequence_pairs(model, set(files)), files=files))
