"""`rnnc data convert`'s work: a data file rewritten as a `.npy` directory or as Parquet, in bounded memory.

The source (`rnnc.convert_sources`) hands out `CHUNK_BYTES` worth of rows at a time;
a `.npy` directory gets one file per array, its header for the whole array and then
its rows chunk by chunk, with plain writes (sequences padded to their widest row, or to
the width the source declares); Parquet gets row groups of about 16 MB (what a reader decodes at once) through `ParquetWriter`,
each sequence cut at its row's real steps (a list per row, nothing padded on disk), a
static array as a scalar or fixed-size list column, class names and padded widths in
the schema's metadata (`rnnc.classes`, `rnnc.steps`), so converting back gives the
arrays that went in. Everything is written under a temporary name beside OUT and
renamed at the end: a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .convert_sources import Chunk, Field, Source, open_source
from .data_parquet import CLASSES_KEY, STEPS_KEY, SUFFIX, pyarrow
from .errors import DataError, UsageError
from .npy_header import product

CHUNK_BYTES = 16 << 20  # what one chunk of every array holds, about
ROW_GROUP_BYTES = 16 << 20  # a Parquet row group, about: a reader decodes one whole
FORMATS = ("npy", "parquet")


def output_format(out: Path, given: str | None) -> str:
    """`given`, else parquet for a name ending in `.parquet`, else a `.npy` directory."""
    if given is not None:
        if given == "npy" and out.suffix == SUFFIX:
            raise UsageError(f"-o {out}: a name ending in {SUFFIX} for a directory of .npy files; choose another name")
        return given
    return "parquet" if out.suffix == SUFFIX else "npy"


def chunk_rows(source: Source) -> int:
    per_row = sum(product((f.steps or 1, *f.item)) * f.dtype.itemsize for f in source.fields.values()) or 1
    return max(1, CHUNK_BYTES // per_row)


def convert(inp: Path, out: Path, fmt: str, progress: Callable[[int], None] | None = None) -> Source:
    """Write the data at `inp` to `out` as `fmt` (`npy`: a directory of `.npy` files;
    `parquet`: one `.parquet` file); `progress(rows)` after each chunk."""
    if out.exists() or out.is_symlink():
        raise UsageError(f"-o {out}: already exists; remove it or choose another name")
    if inp.resolve() == out.resolve():
        raise UsageError(f"-o {out}: that is the input itself")
    if fmt == "parquet":
        pyarrow()
    source = open_source(inp)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"-o {out}: no such directory {folder}")
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder))
    try:
        if fmt == "npy":
            _npy_dir(source, temporary, progress)
            temporary.rename(out)
        else:
            written = temporary / out.name
            _parquet(source, written, progress)
            written.rename(out)
            temporary.rmdir()
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return source


def _chunks(source: Source) -> Iterator[tuple[int, dict[str, Chunk]]]:
    start = 0
    for chunk in source.chunks(chunk_rows(source)):
        yield start, chunk
        start += len(next(iter(chunk.values())).values)
    if start != source.count:
        raise DataError(f"{source.origin}: changed while it was read ({start} rows, {source.count} before)")


def _npy_dir(source: Source, folder: Path, progress: Callable[[int], None] | None) -> None:
    files = {}
    try:
        for name, f in source.fields.items():
            shape = (source.count, *(() if f.steps is None else (f.steps,)), *f.item)
            files[name] = (folder / f"{name}.npy").open("wb")
            _header(files[name], f.dtype, shape)
        for name, values in source.constants.items():
            np.save(folder / f"{name}.npy", values, allow_pickle=False)
        for _, chunk in _chunks(source):
            for name, part in chunk.items():
                f = source.fields[name]
                values = np.ascontiguousarray(part.values, dtype=f.dtype)
                if part.sizes is not None and values.shape[1] < (f.steps or 0):  # zeros to the widest row
                    full = np.zeros((len(values), f.steps, *f.item), f.dtype)  # type: ignore[misc]
                    full[:, : values.shape[1]] = values
                    values = full
                files[name].write(values.tobytes())
            if progress:
                progress(len(next(iter(chunk.values())).values))
        for handle in files.values():
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in files.values():
            handle.close()


def _header(handle: Any, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The `.npy` header of the whole array; its data follows chunk by chunk (plain
    writes: the pages of a memory map being filled would count in resident memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(handle, header)
    except ValueError:  # a header past 64 KiB
        np.lib.format.write_array_header_2_0(handle, header)


def _sync(file: Path) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _arrow_type(pa: Any, f: Field) -> Any:
    kind = pa.from_numpy_dtype(f.dtype)
    for size in reversed(f.item):
        kind = pa.list_(kind, size)
    return pa.list_(kind) if f.steps is not None else kind


def _parquet(source: Source, path: Path, progress: Callable[[int], None] | None) -> None:
    pa, pq = pyarrow()
    metadata = {}
    if source.constants:
        metadata[CLASSES_KEY] = json.dumps({k: [str(n) for n in v] for k, v in source.constants.items()}).encode()
    steps = {name: f.steps for name, f in source.fields.items() if f.steps is not None}
    if steps:
        metadata[STEPS_KEY] = json.dumps(steps).encode()
    schema = pa.schema([pa.field(name, _arrow_type(pa, f), nullable=False) for name, f in source.fields.items()], metadata=metadata)
    group = max(1, chunk_rows(source) * ROW_GROUP_BYTES // CHUNK_BYTES)
    with pq.ParquetWriter(path, schema) as writer:
        for _, chunk in _chunks(source):
            columns = [_column(pa, chunk[name], f, schema.field(name).type) for name, f in source.fields.items()]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=group)
            if progress:
                progress(len(next(iter(chunk.values())).values))
    _sync(path)


def _column(pa: Any, part: Chunk, f: Field, kind: Any) -> Any:
    """A chunk of one array as an arrow array: a sequence's rows cut at their sizes."""
    values = np.ascontiguousarray(part.values, dtype=f.dtype)
    if part.sizes is not None:
        sizes = np.minimum(part.sizes, values.shape[1])
        real = np.arange(values.shape[1])[None, :] < sizes[:, None]
        steps = _nested(pa, values[real], f.item, kind.value_type)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), steps, type=kind)
    return _nested(pa, values, f.item, kind)


def _nested(pa: Any, values: np.ndarray, item: tuple[int, ...], kind: Any) -> Any:
    """`values` `[n, *item]` as n arrow values: nested fixed-size lists over `item`."""
    if not item:
        return pa.array(values.reshape(-1), type=kind)
    flat = pa.array(values.reshape(-1), type=pa.from_numpy_dtype(values.dtype))
    for size in reversed(item):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat
