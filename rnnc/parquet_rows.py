"""A Parquet data set (`rnnc.data_parquet`) against a model, as a row source.

`ParquetRows` is the data set as an `rnnc.rows.Rows` source for training from disk
(per-step targets padded to their output's steps, which `rnnc.graph_layout.flow`
follows from the inputs, `target_steps`): `take(index)` pads the rows it is asked for
only to the longest among them, a sequence's lengths column given by the file or made
from its lists (`parquet_rows` pairs them as the model reads them). The columns are
decoded in memory, or, for a large set, read from the data cache
(`rnnc.parquet_spill`). Needs numpy; pyarrow to decode.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import ir
from .data_parquet import Column, ParquetTable, list_lengths
from .dataset import output_steps
from .errors import DataError
from .graph_layout import flow, output_node
from .metadata import lengths_rules
from .parquet_spill import SPILL_ABOVE, open_table
from .rows import Column as RowsColumn
from .rows import longest


def target_steps(model: ir.Model, table: ParquetTable) -> dict[str, int]:
    """A graph's per-step outputs' steps, as `rnnc.graph_layout.flow` follows them from
    the inputs' longest rows: the width their targets are padded to."""
    inputs = [inp for inp in model.inputs if inp.name in table.columns]
    steps = {inp.name: int(table.columns[inp.name].sizes().max()) for inp in inputs
             if inp.sequence and table.columns[inp.name].offsets is not None}
    values = flow(model, steps, list_lengths(table, list(steps)))
    return {out.name: s for out in model.outputs if (s := values[output_node(model, out).key][0]) is not None}


def sequence_lengths(model: ir.Model) -> dict[str, str]:
    """Which list columns are sequences and the name of their lengths: a chain's `x`
    (and a per-step `y` with the same steps) by `lengths`, a graph's inputs that take
    lengths by `<input>_lengths`."""
    if model.graph is not None:
        rules = lengths_rules(model)
        return {inp.name: inp.lengths_name for inp in model.inputs if inp.name in rules and inp.sequence}
    pairs = {"x": "lengths"}
    if model.sequence_output and not any(isinstance(n.layer, ir.Conv1D) for n in model.nodes):
        pairs["y"] = "lengths"
    return pairs


def parquet_rows(model: ir.Model, path: str | Path, origin: str | None = None, spill_above: int = SPILL_ABOVE) -> ParquetRows:
    """The Parquet data set at `path` as a row source, its sequences paired with their
    lengths as `model` reads them (`sequence_lengths`); above `spill_above` bytes
    decoded, read from the data cache (`rnnc.parquet_spill`), not held in memory."""
    if model.graph is None:
        return ParquetRows(open_table(path, ("x", "y", "lengths"), spill_above), sequence_lengths(model), origin)
    table = open_table(path, None, spill_above)
    return ParquetRows(table, sequence_lengths(model), origin, target_steps(model, table))


class ParquetRows:
    """An `rnnc.rows.Rows` over decoded Parquet columns (flat values and offsets).

    `lengths` maps a list column to the name of its lengths column: the file's, or,
    where the file has none and the rows differ in length, one made from the lists (a
    column of rows that all have the same length has no lengths: every step is real,
    as a `.npz` without `lengths`). A list column's `shape` has its longest row's steps,
    or `widths[name]` (a graph's per-step targets: their output's steps)."""

    def __init__(self, table: ParquetTable, lengths: Mapping[str, str], origin: str | None = None,
                 widths: Mapping[str, int] | None = None):
        self.origin = origin or table.origin
        self.widths = dict(widths or {})
        self.data: dict[str, Column] = dict(table.columns)
        for name, lengths_name in lengths.items():
            column = self.data.get(name)
            if column is None or column.offsets is None or lengths_name in self.data:
                continue
            sizes = column.sizes()
            if sizes.size and (sizes != sizes[0]).any():
                self.data[lengths_name] = Column(lengths_name, sizes.astype(np.int64))
        self.pairs = {n: l for n, l in lengths.items() if n in self.data and self.data[n].offsets is not None and l in self.data}
        self.columns = {name: RowsColumn(self._shape(column), column.dtype, self.pairs.get(name))
                        for name, column in self.data.items()}
        self.constants = {name: np.asarray(names, dtype=str) for name, names in table.classes.items()}
        self._n = len(table)

    def _shape(self, column: Column) -> tuple[int, ...]:
        if column.offsets is None:
            return (len(column), *column.item)
        return (len(column), self.widths.get(column.name, int(column.sizes().max(initial=0))), *column.item)

    def __len__(self) -> int:
        return self._n

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        index = np.asarray(index, dtype=np.int64)
        out = {name: c.take(index) for name, c in self.data.items() if c.offsets is None}
        for name, column in self.data.items():
            if column.offsets is not None:
                steps = longest(self, out, name) if name in self.pairs else self.columns[name].shape[1]
                try:
                    out[name] = column.take(index, steps, cut=name in self.pairs)
                except DataError as err:
                    raise DataError(f"{self.origin}: {err}") from None
        return out
