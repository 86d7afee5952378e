"""What `rnnc predict` writes for a v2 graph: one table with every output's columns, or the raw arrays.

CSV: a header and one row per sample; each output's columns follow v1's rules
(`predict_output.output_columns`) with the output's name in front: `churn_label,
churn_probability, churn_p_yes` for a classifier, `level` (or `level_0`, `level_1`) for
a regression. A per-step output's cell holds one value per real step, separated by
spaces, as v1's `wide` format. `.npz`: one float32 array per output, named after it,
and `<input>_lengths` (int64), the lengths each input was fed, filled in where the file
had none; `.npy` holds the only output of a one-output graph. Arrays are written batch
by batch to temporary files beside the output (a zip archive takes one member at a
time), then into the archive. Every writer counts rows as v1's do. A decoded answer
(`predict_decode`) is one cell per question (`DecodedCsvWriter`).
"""

from __future__ import annotations

import contextlib
import csv
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

import numpy as np

from rnnc.cli.predict_output import Columns, Counted, output_columns
from rnnc.errors import ArtifactError
from rnnc.runtime_graph import GraphPredictor

if TYPE_CHECKING:
    from rnnc import ir

Arrays = dict[str, np.ndarray]
COPY_BYTES = 16 << 20


class GraphCsvWriter(Counted):
    """The table: every output's columns, in the model's order of outputs."""

    def __init__(self, handle: IO[str], columns: dict[str, Columns], count: int, model: str):
        super().__init__(count, model)
        self.writer = csv.writer(handle, lineterminator="\n")
        self.columns = columns

    def write(self, outputs: Arrays, lengths: dict[str, np.ndarray | None]) -> None:
        """One batch: `outputs` by name; `lengths` the real steps of each per-step output
        (None: every step)."""
        n = len(next(iter(outputs.values())))
        if self._take(n) == 0:  # the header waits for the first rows: a bad input prints nothing
            self.writer.writerow([name for columns in self.columns.values() for name in columns.names])
        blocks = [self._cells(columns, outputs[name], lengths.get(name)).astype(object) for name, columns in self.columns.items()]
        self.writer.writerows(np.concatenate(blocks, axis=1).tolist())

    @staticmethod
    def _cells(columns: Columns, y: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        if y.ndim == 2:
            return columns.cells(y)
        n, steps, units = y.shape
        cells = columns.cells(y.reshape(n * steps, units)).reshape(n, steps, -1)
        real = lengths if lengths is not None else np.full(n, steps)
        return np.array([[" ".join(cells[i, : real[i], c]) for c in range(cells.shape[2])] for i in range(n)],
                        dtype=object).reshape(n, cells.shape[2])


class GraphArrayWriter(Counted):
    """`names` as `.npz` members (or the one array of an `.npy`), batch by batch."""

    def __init__(self, handle: IO[bytes], names: list[str], count: int, model: str, *, npz: bool, folder: str):
        super().__init__(count, model)
        self.handle, self.npz = handle, npz
        self.parts = {name: tempfile.TemporaryFile(dir=folder, prefix=".rnnc-predict-") for name in names}
        self.rows: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    def write(self, arrays: Arrays) -> None:
        self._take(len(next(iter(arrays.values()))))
        for name, value in arrays.items():
            dtype = np.dtype(np.int64) if value.dtype.kind in "iu" else np.dtype(np.float32)
            value = np.ascontiguousarray(value, dtype=dtype)
            row = (value.shape[1:], dtype)
            if self.rows.setdefault(name, row) != row:
                raise ArtifactError(f"{self.model}: gave {name} of shape {list(value.shape[1:])} after {list(self.rows[name][0])}")
            self.parts[name].write(value.tobytes())

    def finish(self) -> None:
        super().finish()
        if not self.npz:
            self._copy(self.handle, *next(iter(self.parts.items())))
            return
        with zipfile.ZipFile(self.handle, "w", allowZip64=True) as archive:
            for name, part in self.parts.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    self._copy(member, name, part)

    def _copy(self, out: IO[bytes], name: str, part: IO[bytes]) -> None:
        shape, dtype = self.rows.get(name, ((), np.dtype(np.float32)))
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (self.count, *shape)}
        np.lib.format.write_array_header_2_0(out, header)
        part.seek(0)
        shutil.copyfileobj(part, out, COPY_BYTES)

    def close(self) -> None:
        for part in self.parts.values():
            with contextlib.suppress(OSError):
                part.close()


def graph_columns(predictor: GraphPredictor) -> dict[str, Columns]:
    """Each output's CSV columns, named after it."""
    return {name: output_columns(out.units, out.meaning, out.classes, name=name) for name, out in predictor.outputs.items()}


class OutputSteps:
    """The real steps of each per-step output, for the CSV to cut its cells there: the
    lengths of the input the metadata says it follows; without one, every step is real
    when its time axis is an input's (`time`) or a fixed number. A convolution that
    changes the number of steps maps lengths to its own: then the spec's graph says
    (`rnnc.graph_layout.flow`, given the spec's IR), and without it the output is
    `unknown`."""

    def __init__(self, predictor: GraphPredictor, model: ir.Model | None = None):
        self.predictor, self.model = predictor, model
        any_lengths = any(inp.takes_lengths for inp in predictor.inputs.values())
        self.rule: dict[str, str | None] = {}  # output -> the input it follows; None: every step real
        self.unknown: list[str] = []
        for name, out in predictor.outputs.items():
            if not out.per_step:
                continue
            if out.lengths is not None:
                self.rule[name] = out.lengths
            elif out.shape[1] == "time" or isinstance(out.shape[1], int) or not any_lengths:
                self.rule[name] = None
            elif model is None:
                self.unknown.append(name)

    def of(self, inputs: Arrays, fed: Arrays) -> dict[str, np.ndarray | None]:
        out: dict[str, np.ndarray | None] = {name: None if rule is None else fed[rule] for name, rule in self.rule.items()}
        if self.model is not None and len(out) < sum(o.per_step for o in self.predictor.outputs.values()):
            from rnnc.graph_layout import flow, input_steps, output_node

            values = flow(self.model, input_steps(self.model, {n: a.shape for n, a in inputs.items()}), fed)
            for o in self.model.outputs:
                if o.name not in out and self.predictor.outputs[o.name].per_step:
                    out[o.name] = values[output_node(self.model, o).key][1]
        return out


class DecodedCsvWriter(Counted):
    """Decoded answers as a table: a header naming the output, then one row per question,
    its answer as `text(ids)` makes it (the model's tokens, or ids with spaces)."""

    def __init__(self, handle: IO[str], name: str, text: Callable[[list[int]], str], count: int, model: str):
        super().__init__(count, model)
        self.writer = csv.writer(handle, lineterminator="\n")
        self.name, self.text = name, text

    def write(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        if self._take(len(ids)) == 0:
            self.writer.writerow([self.name])
        self.writer.writerows([self.text(row[:n].tolist())] for row, n in zip(ids, lengths, strict=True))
