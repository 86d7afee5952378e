"""A Parquet data set decoded once into the data cache, its rows read from there by offset.

`open_table` gives a data set's `ParquetTable`: decoded whole in memory
(`rnnc.data_parquet.read_table`) when it is small, or, above `SPILL_ABOVE` bytes of
decoded pages (the footers tell), decoded once, `rnnc.data_parquet.BATCH_BYTES` at a
time, into `rnnc.spill`'s cache: per column a `.npy` of its flat values
`[steps of every row, *item]` (a list column) or `[rows, *item]`, and a list column's
row offsets `[rows + 1]` beside it, the ragged analogue of a `.npy` directory (the real
steps only, nothing padded). Its `SpilledColumn`s keep only the offsets in memory and
read the rows they are asked for with `os.preadv` (not a memory map, as
`rnnc.rows.NpyDirRows`: mapped pages would count in resident memory as an epoch touched
them), padded exactly as an in-memory `Column` pads them, so training takes the same
batches either way. A valid cache is reused by the next run without importing pyarrow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .data_parquet import Column, ParquetTable, decoded, decoded_bytes, open_file, parquet_files, planned, same_kind
from .errors import DataError
from .npy_header import Header, product, read_header
from .spill import NpyWriter, cached, progress

SPILL_ABOVE = 64 << 20  # bytes of decoded pages: a larger Parquet data set is read from the data cache


def open_table(path: str | Path, names: Iterable[str] | None = None, spill_above: int = SPILL_ABOVE) -> ParquetTable:
    """The columns `names` (default: all) of the Parquet data set at `path`: from the
    data cache where it holds them, else decoded into it when larger than `spill_above`
    bytes, else decoded in memory."""
    files = parquet_files(path)
    what = None if names is None else sorted(names)
    if (table := cached("parquet", files, what, str(path), _read, None)) is not None:
        return table
    if decoded_bytes(path) <= spill_above:
        from .data_parquet import read_table

        return read_table(path, names)
    return spill(path, names)


def spill(path: str | Path, names: Iterable[str] | None = None) -> ParquetTable:
    """The data set at `path` decoded into the data cache (once) and read from there."""
    files = parquet_files(path)
    chosen = None if names is None else sorted(names)
    table = cached("parquet", files, chosen, str(path), _read, lambda folder: _write(path, chosen, folder))
    assert table is not None
    return table


def _write(path: str | Path, names: list[str] | None, folder: Path) -> dict[str, Any]:
    """Every column of the data set into `folder`; what the manifest holds of them."""
    total = sum(open_file(f).metadata.num_rows for f in parquet_files(path))
    writers: dict[str, NpyWriter] = {}
    kinds: dict[str, Column] = {}
    offsets: dict[str, list[np.ndarray]] = {}
    ends: dict[str, int] = {}
    classes: dict[str, list[str]] = {}
    rows = 0
    with progress(total, "row", f"decoding {Path(path).name}") as bar:
        try:
            for _, count, columns in decoded(path, names, classes):
                rows += count
                for name, column in columns.items():
                    if name not in writers:
                        writers[name] = NpyWriter(folder / f"c{len(writers)}.npy", column.dtype, column.item)
                        kinds[name] = Column(name, column.values[:0], None if column.offsets is None else column.offsets[:1])
                        offsets[name], ends[name] = [np.zeros(1, np.int64)], 0
                    try:
                        same_kind(kinds[name], column)
                    except DataError as err:
                        raise DataError(f"{path}: {err}") from None
                    writers[name].append(column.values)
                    if column.offsets is not None:
                        offsets[name].append(column.offsets[1:] + ends[name])
                        ends[name] += int(column.offsets[-1])
                bar.update(count)
        finally:
            for writer in writers.values():
                writer.close()
    if rows == 0:
        raise DataError(f"{path}: holds no samples")
    entries = {}
    for i, name in enumerate(writers):
        entry = {"values": f"c{i}.npy", "offsets": None}
        if kinds[name].offsets is not None:
            entry["offsets"] = f"c{i}.offsets.npy"
            np.save(folder / entry["offsets"], np.concatenate(offsets[name]))
        entries[name] = entry
    return {"rows": rows, "columns": entries, "classes": classes}


def _read(folder: Path, manifest: dict[str, Any]) -> ParquetTable:
    rows = int(manifest["rows"])
    columns = {}
    for name, entry in manifest["columns"].items():
        values = folder / entry["values"]
        with values.open("rb") as stream:
            header = read_header(stream, str(values), name)
        offsets = None if entry["offsets"] is None else np.load(folder / entry["offsets"], allow_pickle=False)
        count = header.shape[0] if header.shape else -1
        if offsets is not None and (len(offsets) != rows + 1 or offsets[0] != 0 or offsets[-1] != count or (np.diff(offsets) < 0).any()):
            raise DataError(f"{folder / entry['offsets']}: offsets that do not match {values}")
        if offsets is None and count != rows:
            raise DataError(f"{values}: {count} rows, the data set has {rows}")
        if values.stat().st_size != header.offset + product(header.shape) * header.dtype.itemsize:
            raise DataError(f"{values}: not the size its header says")
        columns[name] = SpilledColumn(name, values, header, offsets)
    classes = {str(k): [str(n) for n in v] for k, v in manifest["classes"].items()}
    return ParquetTable(manifest["origin"], columns, classes)  # type: ignore[arg-type]


class SpilledColumn:
    """A `rnnc.data_parquet.Column` whose values stay in a `.npy` in the data cache:
    `take` reads only the rows it is asked for and pads them as `Column.take` does."""

    def __init__(self, name: str, path: Path, header: Header, offsets: np.ndarray | None):
        self.name, self.path, self.header, self.offsets = name, path, header, offsets
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.header.shape[0] if self.offsets is None else len(self.offsets) - 1

    @property
    def item(self) -> tuple[int, ...]:
        return tuple(self.header.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.header.dtype

    def sizes(self, index: np.ndarray | None = None) -> np.ndarray:
        assert self.offsets is not None
        sizes = np.diff(self.offsets)
        return sizes if index is None else sizes[index]

    def take(self, index: np.ndarray, steps: int | None = None, *, cut: bool = False) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        step = product(self.item) * self.dtype.itemsize  # one row's bytes, or one step's for a list column
        run = len(index) > 1 and index[-1] - index[0] == len(index) - 1 and bool((np.diff(index) == 1).all())
        if self.offsets is None:
            out = np.empty((len(index), *self.item), self.dtype)
            if run:  # rows in file order (a chunk being checked): one read
                self._read(out.reshape(-1).view(np.uint8), int(index[0]) * step)
            else:
                self._gather(out, index, np.full(len(index), 1, np.int64), 1, step)
            return out
        full = self.sizes(index)
        sizes, steps = planned(self.name, full, index, steps, cut)
        out = np.zeros((len(index), steps, *self.item), self.dtype)
        if run and (sizes == full).all():  # in file order, nothing cut: one read, placed by a mask
            flat = np.empty((int(sizes.sum()), *self.item), self.dtype)
            self._read(flat.reshape(-1).view(np.uint8), int(self.offsets[index[0]]) * step)
            out[np.arange(steps)[None, :] < sizes[:, None]] = flat
        else:
            self._gather(out, self.offsets[index], sizes, steps, step)
        return out

    def _gather(self, out: np.ndarray, starts: np.ndarray, sizes: np.ndarray, width: int, step: int) -> None:
        """Row i of `out` (`width` steps of `step` bytes) gets `sizes[i]` steps read from step `starts[i]`."""
        if not out.size:
            return
        view = memoryview(out.reshape(-1).view(np.uint8))
        for i, (at, size) in enumerate(zip(starts.tolist(), sizes.tolist())):
            if size:
                self._read(view[i * width * step : i * width * step + size * step], at * step)

    def _read(self, into: np.ndarray | memoryview, at: int) -> None:
        """`into`'s bytes from byte `at` of the values."""
        view, fd, done = memoryview(into), self._open(), 0  # type: ignore[arg-type]
        while done < len(view):
            got = os.preadv(fd, [view[done:]], self.header.offset + at + done)
            if got <= 0:
                raise DataError(f"{self.path}: truncated (the data cache of a Parquet data set: delete it to decode again)")
            done += got

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDONLY)
            if self._fd is None:
                self._fd = fd
            else:  # another thread opened it first
                os.close(fd)
        return self._fd

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)  # type: ignore[arg-type]
            except OSError:
                pass

    def __getstate__(self) -> dict:  # a copy opens its own descriptor
        return {**self.__dict__, "_fd": None}
