"""Data sets on disk as `rnnc predict` input: a directory of `.npy` files, Parquet (a file or a directory).

A `.npy` directory's `x.npy` is checked as a `.npy` input is (`predict_arrays`: header
against the file's size, every value in one pass) and read a block of rows at a time
with plain reads, not a memory map, with `lengths.npy` beside it when there is one. Parquet is read one
batch of rows at a time (`ParquetFile.iter_batches`, file after file in name order),
twice: once to check every value and find the longest sequence, once to run. Every
batch is padded to that longest sequence (or to the width the file says it came from,
`rnnc.steps`, written by `rnnc data convert`), so the model sees what it sees from the
padded `.npz` and a per-step output has one time axis throughout. A sequence's length
is the `lengths` column, else its list's where the rows differ. Only the columns
`x` and `lengths` are read; a chain (spec version 1) only. Needs numpy and pyarrow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rnnc.cli.predict_arrays import CHECK_BYTES, _check_values, _check_x
from rnnc.cli.predict_io import Batch, Source, rows_for
from rnnc.data_parquet import STEPS_KEY, Column, decode_column, is_parquet, open_file, parquet_files, pyarrow
from rnnc.errors import DataError
from rnnc.npy_header import product, read_header
from rnnc.runtime import Predictor

PASS_ROWS = 1024  # rows decoded at a time by the checking pass (4096: +100 MB peak at 100 x 16 per row)


def is_on_disk(path: str) -> bool:
    """A Parquet file or directory, or a directory (of `.npy` files)."""
    return is_parquet(path) or Path(path).is_dir()


def open_disk(path: str, predictor: Predictor) -> Source:
    if is_parquet(path):
        return _parquet(path, predictor)
    folder = Path(path)
    if not (folder / "x.npy").is_file():
        raise DataError(f"{path}: a directory input holds x.npy (and optionally lengths.npy), or .parquet files")
    return _npy_dir(path, folder / "x.npy", predictor)


def _npy_dir(path: str, file: Path, predictor: Predictor) -> Source:
    """`x.npy` read a block of rows at a time with plain reads (`np.fromfile` at an
    offset): unlike a memory map, pages read stay in the kernel's cache, not in this
    process's resident memory, however large the file."""
    with file.open("rb") as handle:
        header = read_header(handle, str(file), "x")
        size = os.fstat(handle.fileno()).st_size
    _check_x(str(file), header, size - header.offset)
    if header.fortran and len(header.shape) > 1:
        raise DataError(f"{file}: 'x' is stored in Fortran order; save it with np.save(path, np.ascontiguousarray(x))")
    count, row_values = header.shape[0], product(header.shape[1:])
    lengths_file = file.parent / "lengths.npy"
    lengths = _npy_lengths(lengths_file, count, header.shape[1], predictor) if lengths_file.is_file() else None

    def read(start: int, n: int) -> np.ndarray:
        values = np.fromfile(file, dtype=header.dtype, count=n * row_values, offset=header.offset + start * header.row_bytes)
        if values.size != n * row_values:
            raise DataError(f"{file}: 'x' ends early (the file changed or is truncated)")
        return values.reshape(n, *header.shape[1:])

    rows = max(1, CHECK_BYTES // max(1, header.row_bytes))
    chunks = ((start, read(start, min(rows, count - start))) for start in range(0, count, rows))
    _check_values(str(file), predictor, chunks, lengths_given=lengths is not None)

    def batches(size: int) -> Iterator[Batch]:
        step = rows_for(size, row_values)
        for start in range(0, count, step):
            n = min(step, count - start)
            yield read(start, n), None if lengths is None or not predictor.takes_lengths else lengths[start : start + n]

    return Source(path, count, batches)


def _npy_lengths(file: Path, count: int, steps: int, predictor: Predictor) -> np.ndarray:
    try:
        lengths = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{file}: not a readable .npy array ({err})") from None
    if lengths.shape != (count,) or lengths.dtype.kind not in "iu":
        raise DataError(f"{file}: has shape {list(lengths.shape)} of {lengths.dtype}; it needs {count} integers, one per row of x.npy")
    outside = np.flatnonzero((lengths < 1) | (lengths > steps))
    if predictor.takes_lengths and outside.size:
        i = int(outside[0])
        raise DataError(f"{file}: lengths must lie in [1, {steps}] (the time axis of x.npy); lengths[{i}] is {lengths[i]}")
    return lengths.astype(np.int64)


def _columns(pa: Any, file: Path, handle: Any, size: int) -> Iterator[tuple[Column, np.ndarray | None]]:
    """(x, lengths or None) of each batch of `size` rows of one file."""
    names = handle.schema_arrow.names
    if "x" not in names:
        raise DataError(f"{file}: no column 'x' (columns: {', '.join(names) or 'none'})")
    wanted = ["x", *(["lengths"] if "lengths" in names else [])]
    try:
        for batch in handle.iter_batches(batch_size=size, columns=wanted, use_threads=False):
            x = decode_column(pa, file, "x", batch.column("x"))
            if x.offsets is None:
                raise DataError(f"{file}: column 'x' holds one {list(x.item) or 'number'} per row; a sequence is a list of steps per row")
            lengths = decode_column(pa, file, "lengths", batch.column("lengths")).values if "lengths" in wanted else None
            yield x, lengths
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable Parquet file, truncated or corrupt ({' '.join(str(err).split())})") from None


def _parquet(path: str, predictor: Predictor) -> Source:
    pa, _ = pyarrow()
    files = parquet_files(path)
    handles = [open_file(f) for f in files]
    declared = json.loads((handles[0].schema_arrow.metadata or {}).get(STEPS_KEY, b"{}")).get("x", 0)
    count, longest, ragged = 0, 0, False
    first_size = None
    for file, handle in zip(files, handles, strict=True):
        for x, lengths in _columns(pa, file, handle, PASS_ROWS):
            sizes = x.sizes()
            if lengths is not None and (lengths.dtype.kind not in "iu" or ((lengths < 1) | (lengths > sizes)).any()):
                bad = int(np.flatnonzero((lengths < 1) | (lengths > sizes))[0]) if lengths.dtype.kind in "iu" else 0
                raise DataError(f"{file}: lengths must be integers in [1, the row's steps]; row {count + bad} has "
                                f"{lengths[bad]} for {sizes[bad]} steps")
            first_size = int(sizes[0]) if first_size is None and sizes.size else first_size
            ragged = ragged or bool(sizes.size and (sizes != first_size).any())
            longest = max(longest, int(sizes.max(initial=0)))
            _check_values(str(file), predictor, iter([(count, x.take(np.arange(len(x))))]), lengths_given=lengths is not None)
            count += len(x)
    if count == 0:
        raise DataError(f"{path}: no sequences")
    steps = max(longest, int(declared))
    per_step = int(np.prod(x.item)) if x.item else 1

    def batches(size: int) -> Iterator[Batch]:
        rows = rows_for(size, steps * per_step)
        for file, handle in zip(files, handles, strict=True):
            for x, lengths in _columns(pa, file, handle, rows):
                padded = x.take(np.arange(len(x)), steps)
                if lengths is None and ragged:
                    lengths = x.sizes()
                yield padded, lengths if predictor.takes_lengths else None

    return Source(path, count, batches)


# --- a graph's inputs (spec version 2) from Parquet -----------------------------------


def graph_parquet(path: str, predictor: Any, ignored: tuple[str, ...] = ()) -> Any:
    """A graph's Parquet input (`predict_graph_io.GraphSource`): a column per input and
    optionally `<input>_lengths`, output columns ignored; sequences padded to the widest
    row of the whole file, lengths from the lists where rows differ. Read twice, a batch
    of rows at a time: once to check names, layouts and widths, once to run."""
    from rnnc.cli.predict_graph_io import GraphSource, _check_values, _name_problems, _wanted
    from rnnc.data_parquet import column_names, iter_columns
    from rnnc.runtime_graph import InputErrors

    wanted = _wanted(predictor, ignored)
    names = column_names(path)
    if problems := _name_problems(path, predictor, wanted, names):
        raise InputErrors(problems)
    read = [n for n in names if wanted.get(n) in ("input", "lengths")]
    widest: dict[str, int] = {}
    ragged: set[str] = set()
    layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    count = 0
    for columns, _ in iter_columns(path, read, PASS_ROWS):
        for name, column in columns.items():
            if column.offsets is not None:
                sizes = column.sizes()
                if sizes.size and ((sizes != sizes[0]).any() or (name in widest and widest[name] != sizes[0])):
                    ragged.add(name)
                widest[name] = max(widest.get(name, 0), int(sizes.max(initial=0)))
            layout[name] = (column.item, column.values.dtype)
        count += len(next(iter(columns.values())))
    problems = []
    for name, inp in predictor.inputs.items():
        item, dtype = layout[name]
        shape = (count, widest[name], *item) if name in widest else (count, *item)
        if problem := inp.problem(shape, dtype):
            problems.append(f"{path}: {problem}")
    if problems:
        raise InputErrors(problems)
    row_values = sum(int(np.prod((widest.get(n, 1), *layout[n][0]))) for n in predictor.inputs)

    def batches(size: int) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        for columns, _ in iter_columns(path, read, rows_for(size, row_values)):
            index = np.arange(len(next(iter(columns.values()))))
            inputs = {n: columns[n].take(index, widest.get(n)) for n in predictor.inputs}
            lengths = {n: columns[f"{n}_lengths"].values.astype(np.int64) for n in predictor.inputs if f"{n}_lengths" in columns}
            for name, inp in predictor.inputs.items():
                if name not in lengths and name in ragged and inp.takes_lengths:
                    lengths[name] = columns[name].sizes()
            yield inputs, lengths

    source = GraphSource(path, count, batches)
    _check_values(source, predictor)
    return source
