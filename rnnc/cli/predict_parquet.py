"""`rnnc predict -o OUT.parquet`: the raw outputs as Parquet, written row group by row group.

One row per input row, one column `y`: a fixed-size list of the output's units per
sequence, or for a per-step output a list of such steps, cut at each row's real steps
(no padding on disk, as `rnnc data convert` writes sequences). Each batch is one row
group, so memory stays one batch whatever the input's size; the file goes through
`atomic_open` as every output does. Needs pyarrow (`rnnc[data]`).
"""

from __future__ import annotations

import contextlib
from typing import IO, Any

import numpy as np

from rnnc.cli.predict_output import Counted
from rnnc.errors import ArtifactError


class ParquetWriter(Counted):
    def __init__(self, handle: IO[bytes], count: int, model: str):
        super().__init__(count, model)
        from rnnc.data_parquet import pyarrow

        self.pa, self.pq = pyarrow()
        self.handle = handle
        self.writer: Any = None
        self.row: tuple[int, ...] | None = None

    def write(self, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        pa = self.pa
        self._take(len(y))
        y = np.ascontiguousarray(y, dtype=np.float32)
        units = int(np.prod(y.shape[2:] if y.ndim == 3 else y.shape[1:]))
        if self.row is None:
            self.row = y.shape[2:] if y.ndim == 3 else y.shape[1:]
            kind = pa.list_(pa.float32(), units)
            schema = pa.schema([pa.field("y", pa.list_(kind) if y.ndim == 3 else kind, nullable=False)])
            self.writer = self.pq.ParquetWriter(self.handle, schema)
        elif (y.shape[2:] if y.ndim == 3 else y.shape[1:]) != self.row:
            raise ArtifactError(f"{self.model}: gave outputs of shape {list(y.shape[1:])} after {list(self.row)}")
        if y.ndim == 3:
            sizes = np.full(len(y), y.shape[1]) if lengths is None else np.minimum(lengths, y.shape[1])
            real = np.arange(y.shape[1])[None, :] < sizes[:, None]
            steps = pa.FixedSizeListArray.from_arrays(pa.array(y[real].reshape(-1)), units)
            offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
            column = pa.ListArray.from_arrays(offsets, steps)
        else:
            column = pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1)), units)
        self.writer.write_table(pa.Table.from_arrays([column], schema=self.writer.schema), row_group_size=len(y))

    def finish(self) -> None:
        super().finish()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        """After a failure: let go of the writer quietly (the file is thrown away)."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
