"""What `rnnc data convert` reads: a data file as named fields, handed out in chunks of rows.

A `Source` knows each field's layout up front (`Field`: the item shape of one step or
row, the dtype, and for a sequence its padded width and the field holding its lengths)
and walks the rows in order, `chunk` rows at a time, each field a padded array
`[rows, steps, *item]` (or `[rows, *item]`) with the real steps of each row (`Chunk`),
so a writer can keep the padding (`.npy`) or drop it (Parquet) and never holds more
than one chunk. Sources: a `.npz` (every member streamed out of the archive, stored or
deflated alike: a compressed member is inflated piece by piece, never whole), a
directory of `.npy` files (memory-mapped), Parquet (row group by row group; two
passes, the first for the widths) and `.jsonl` of numeric records (two passes too).
Which arrays are sequences: `x` (rank >= 2) and any array with a `<name>_lengths` (or,
for `x`, `lengths`) beside it; every other array is stored as it is. Arrays that are
not one row per sample (`classes`, `<output>_classes`) are constants. Needs numpy;
pyarrow for Parquet.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data_parquet import (CLASSES_KEY, STEPS_KEY, Column, decode_column, is_parquet, open_file, parquet_files, pyarrow,
                           type_problem)
from .errors import DataError
from .npy_header import Header, read_header

DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError)


@dataclass(frozen=True)
class Field:
    """One per-row array: `item` is one step's shape for a sequence (one row's else),
    `steps` a sequence's padded width, `lengths` the field of its real steps (None: its
    rows' own list lengths, or every step real)."""

    dtype: np.dtype
    item: tuple[int, ...]
    steps: int | None = None
    lengths: str | None = None


@dataclass(frozen=True)
class Chunk:
    """Rows of one field: `values` padded `[rows, steps, *item]` or `[rows, *item]`;
    `sizes` each row's real steps (a sequence's)."""

    values: np.ndarray
    sizes: np.ndarray | None = None


@dataclass(frozen=True)
class Source:
    origin: str
    count: int
    fields: dict[str, Field]
    chunks: Callable[[int], Iterator[dict[str, Chunk]]] = field(repr=False)
    constants: dict[str, np.ndarray] = field(default_factory=dict)


def is_constant(name: str) -> bool:
    return name == "classes" or name.endswith("_classes")


def lengths_name(name: str) -> str:
    return "lengths" if name == "x" else f"{name}_lengths"


def open_source(path: Path) -> Source:
    """The data file or directory at `path`, by its kind."""
    if is_parquet(path):
        return _parquet(path)
    if path.is_dir():
        return _npy_dir(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    if path.suffix == ".npz":
        return _npz(path)
    if path.suffix == ".jsonl":
        return _jsonl(path)
    if path.suffix == ".csv":
        raise DataError(f"{path}: a .csv is a time series or raw text, which the spec's data.csv or data.text turn into "
                        "samples at training time; rnnc data convert reads .npz, .jsonl, .parquet and .npy directories")
    raise DataError(f"{path}: unsupported data file type '{path.suffix}' (rnnc data convert reads .npz, .jsonl, .parquet, "
                    "a directory of .npy or .parquet files)")


# --- padded arrays: .npz members and .npy files ---------------------------------------


def _padded_fields(headers: dict[str, Header], origin: str) -> tuple[int, dict[str, Field]]:
    rows = {name: h.shape[0] for name, h in headers.items() if h.shape}
    counts = sorted(set(rows.values()))
    if len(counts) != 1:
        have = ", ".join(f"{n} {c}" for n, c in rows.items()) or "none"
        raise DataError(f"{origin}: its arrays must hold one row per sample, the same number each (they hold: {have})")
    fields = {}
    for name, h in headers.items():
        if h.dtype.hasobject or h.dtype.kind not in "fiub":
            raise DataError(f"{origin}: '{name}' holds {h.dtype} values; rnnc data convert reads numbers (class names: "
                            "an array named classes or <output>_classes)")
        if h.fortran and len(h.shape) > 1:
            raise DataError(f"{origin}: '{name}' is stored in Fortran order; save it with np.ascontiguousarray")
        sequence = len(h.shape) >= 2 and (name == "x" or lengths_name(name) in headers)
        if sequence:
            paired = lengths_name(name) if lengths_name(name) in headers else None
            fields[name] = Field(h.dtype, h.shape[2:], h.shape[1], paired)
        else:
            fields[name] = Field(h.dtype, h.shape[1:])
    return counts[0], fields


def _chunked(fields: dict[str, Field], readers: dict[str, Callable[[int, int], np.ndarray]], count: int,
             ) -> Callable[[int], Iterator[dict[str, Chunk]]]:
    """Chunks of padded arrays: each row's size is its lengths field's, else the width."""

    def chunks(rows: int) -> Iterator[dict[str, Chunk]]:
        for start in range(0, count, rows):
            n = min(rows, count - start)
            values = {name: read(start, n) for name, read in readers.items()}
            out = {}
            for name, f in fields.items():
                sizes = None
                if f.steps is not None:
                    sizes = values[f.lengths].astype(np.int64) if f.lengths else np.full(n, f.steps, np.int64)
                    sizes = np.clip(sizes, 0, f.steps)
                out[name] = Chunk(values[name], sizes)
            yield out

    return chunks


def _npz(path: Path) -> Source:
    origin = str(path)
    try:
        archive = zipfile.ZipFile(path)
        infos = [i for i in archive.infolist() if i.filename.endswith(".npy")]
        headers = {}
        for info in infos:
            with archive.open(info) as member:
                headers[info.filename.removesuffix(".npy")] = read_header(member, origin, info.filename.removesuffix(".npy"))
    except zipfile.BadZipFile:
        raise DataError(f"{origin}: not a valid .npz archive (no zip structure: truncated, corrupt or another format)") from None
    except DAMAGE as err:
        raise DataError(f"{origin}: not a valid .npz archive, truncated or corrupt ({err})") from None
    if not headers:
        raise DataError(f"{origin}: holds no arrays")
    constants = {}
    for name in [n for n in headers if is_constant(n)]:
        headers.pop(name)
        constants[name] = _whole(archive, f"{name}.npy", origin, name)
    count, fields = _padded_fields(headers, origin)
    streams: dict[str, Iterator[np.ndarray]] = {}

    def reader(name: str) -> Callable[[int, int], np.ndarray]:
        header = headers[name]
        row = int(np.prod(header.shape[1:], dtype=np.int64)) * header.dtype.itemsize

        def read(start: int, n: int) -> np.ndarray:
            if start == 0:  # a new pass: open the member again
                member = archive.open(f"{name}.npy")
                member.read(header.offset)
                streams[name] = member  # type: ignore[assignment]
            try:
                data = streams[name].read(n * row)  # type: ignore[attr-defined]
            except DAMAGE as err:
                raise DataError(f"{origin}: '{name}' is damaged ({err})") from None
            if len(data) != n * row:
                raise DataError(f"{origin}: '{name}' ends early: truncated or damaged")
            return np.frombuffer(data, dtype=header.dtype).reshape(n, *header.shape[1:])

        return read

    return Source(origin, count, fields, _chunked(fields, {n: reader(n) for n in headers}, count), constants)


def _whole(archive: zipfile.ZipFile, member: str, origin: str, name: str) -> np.ndarray:
    try:
        with archive.open(member) as stream:
            array = np.lib.format.read_array(stream, allow_pickle=False)
    except DAMAGE as err:
        raise DataError(f"{origin}: '{name}' is damaged or pickled ({err})") from None
    if array.ndim != 1 or array.dtype.kind not in "US":
        raise DataError(f"{origin}: '{name}' must be a 1-D array of names, got {array.dtype} {list(array.shape)}")
    return array


def _npy_dir(path: Path) -> Source:
    from .rows import read_npy_dir

    origin = str(path)
    files = read_npy_dir(path, origin)
    constants = {name: np.load(f.path, allow_pickle=False) for name, f in files.items() if is_constant(name)}
    arrays = {name: np.load(f.path, mmap_mode="r", allow_pickle=False) for name, f in files.items() if not is_constant(name)}
    count, fields = _padded_fields({name: files[name].header for name in arrays}, origin)
    readers = {name: (lambda a: lambda start, n: np.asarray(a[start : start + n]))(a) for name, a in arrays.items()}
    return Source(origin, count, fields, _chunked(fields, readers, count), constants)


# --- ragged rows: Parquet and .jsonl ----------------------------------------------------


def _parquet(path: Path) -> Source:
    pa, _ = pyarrow()
    files = parquet_files(path)
    handles = [open_file(f) for f in files]
    schema = handles[0].schema_arrow
    for file, handle in zip(files[1:], handles[1:]):
        if handle.schema_arrow.names != schema.names:
            raise DataError(f"{file}: has columns {', '.join(handle.schema_arrow.names)}, but {files[0]} has {', '.join(schema.names)}")
    metadata = schema.metadata or {}
    constants = {k: np.asarray(v, dtype=str) for k, v in json.loads(metadata.get(CLASSES_KEY, b"{}")).items()}
    declared = json.loads(metadata.get(STEPS_KEY, b"{}"))
    for name in schema.names:
        if problem := type_problem(pa, schema.field(name).type):
            raise DataError(f"{files[0]}: column '{name}' {problem}")

    def batches() -> Iterator[dict[str, Chunk]]:
        for file, handle in zip(files, handles):
            try:
                for batch in handle.iter_batches(batch_size=1024, use_threads=False):
                    yield {name: _as_chunk(decode_column(pa, file, name, batch.column(name))) for name in schema.names}
            except (pa.ArrowException, OSError) as err:
                raise DataError(f"{file}: not a readable Parquet file, truncated or corrupt ({err})") from None

    return _ragged(str(path), batches, declared, constants)


def _as_chunk(column: Column) -> Chunk:
    if column.offsets is None:
        return Chunk(column.values)
    index = np.arange(len(column))
    return Chunk(column.take(index), column.sizes())


def _jsonl(path: Path) -> Source:
    origin = str(path)

    def batches() -> Iterator[dict[str, Chunk]]:
        records: list[tuple[int, dict]] = []
        with path.open(encoding="utf-8") as handle:
            for line, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as err:
                    raise DataError(f"{origin}:{line}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{origin}:{line}: expected a JSON object of arrays per line, got {type(record).__name__}")
                records.append((line, record))
                if len(records) == 1024:
                    yield _records(origin, records)
                    records = []
        if records:
            yield _records(origin, records)

    return _ragged(origin, batches, {}, {})


def _records(origin: str, records: list[tuple[int, dict]]) -> dict[str, Chunk]:
    names = list(records[0][1])
    out = {}
    for name in names:
        rows = []
        for line, record in records:
            if name not in record or set(record) != set(names):
                raise DataError(f"{origin}:{line}: fields {', '.join(record)}, but line {records[0][0]} has {', '.join(names)}")
            value = record[name]
            if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
                raise DataError(f"{origin}:{line}: field '{name}' holds text; raw text is tokenised at training time (the "
                                "spec's data.text), rnnc data convert reads numbers")
            try:
                row = np.asarray(value)
            except ValueError:
                row = np.asarray(None)
            if row.dtype.kind not in "iufb" and row.size:
                raise DataError(f"{origin}:{line}: field '{name}' is not a number or a regular list of numbers")
            if rows and (row.ndim != rows[0].ndim or (row.ndim > 1 and row.shape[1:] != rows[0].shape[1:])):
                raise DataError(f"{origin}:{line}: field '{name}' has shape {list(row.shape)}, line {records[0][0]} "
                                f"{list(rows[0].shape)} (only the number of steps may differ)")
            rows.append(row)
        dtype = np.int64 if all(r.dtype.kind in "iub" or not r.size for r in rows) else np.float32
        if rows[0].ndim == 0:
            out[name] = Chunk(np.array([r.item() for r in rows], dtype=dtype))
            continue
        sizes = np.array([len(r) for r in rows], np.int64)
        item = rows[0].shape[1:]
        padded = np.zeros((len(rows), int(sizes.max(initial=0)), *item), dtype)
        for i, r in enumerate(rows):
            padded[i, : len(r)] = r
        out[name] = Chunk(padded, sizes)
    return out


def _ragged(origin: str, batches: Callable[[], Iterator[dict[str, Chunk]]], declared: dict[str, int],
            constants: dict[str, np.ndarray]) -> Source:
    """A source read twice: once for the rows and each sequence's widest row, once to convert."""
    count, fields = 0, {}
    for batch in batches():
        count += len(next(iter(batch.values())).values)
        for name, chunk in batch.items():
            widest = None if chunk.sizes is None else int(chunk.sizes.max(initial=0))
            item = chunk.values.shape[2:] if chunk.sizes is not None else chunk.values.shape[1:]
            seen = fields.get(name)
            if seen is not None and (seen.item != item or (seen.steps is None) != (widest is None)):
                raise DataError(f"{origin}: '{name}' changes its shape between rows ({list(seen.item)} and {list(item)})")
            dtype = np.result_type(seen.dtype, chunk.values.dtype) if seen else chunk.values.dtype
            steps = None if widest is None else max(widest, (seen.steps or 0) if seen else 0, declared.get(name, 0))
            lengths = lengths_name(name) if widest is not None and lengths_name(name) in batch else None
            fields[name] = Field(np.dtype(dtype), tuple(item), steps, lengths)
    if count == 0:
        raise DataError(f"{origin}: holds no samples")

    def chunks(rows: int) -> Iterator[dict[str, Chunk]]:
        pending: list[dict[str, Chunk]] = []
        held = 0
        for batch in batches():
            pending.append(batch)
            held += len(next(iter(batch.values())).values)
            while held >= rows:
                out, pending, held = _split(pending, rows, fields)
                yield out
        if held:
            yield _split(pending, held, fields)[0]

    return Source(origin, count, fields, chunks, constants)


def _split(pending: list[dict[str, Chunk]], rows: int, fields: dict[str, Field]) -> tuple[dict[str, Chunk], list, int]:
    """The first `rows` rows of the pending batches as one chunk, and what is left."""
    joined = {}
    for name, f in fields.items():
        parts = [b[name] for b in pending]
        if f.steps is None:
            joined[name] = Chunk(np.concatenate([p.values for p in parts]).astype(f.dtype, copy=False))
            continue
        width = max(p.values.shape[1] for p in parts)
        values = np.concatenate([np.pad(p.values, [(0, 0), (0, width - p.values.shape[1])] + [(0, 0)] * len(f.item))
                                 for p in parts]).astype(f.dtype, copy=False)
        joined[name] = Chunk(values, np.concatenate([p.sizes for p in parts]))  # type: ignore[misc]
    total = len(next(iter(joined.values())).values)
    head = {n: Chunk(c.values[:rows], None if c.sizes is None else c.sizes[:rows]) for n, c in joined.items()}
    if total == rows:
        return head, [], 0
    rest = {n: Chunk(c.values[rows:], None if c.sizes is None else c.sizes[rows:]) for n, c in joined.items()}
    return head, [rest], total - rows
