"""Parquet data files: one row per sequence, read ragged (flat values and offsets).

A `.parquet` file, or a directory of them read as one data set in file-name order,
holds one row per sample and one column per array a `.npz` would hold: a v1 chain's
`x`, `y` and optional `lengths`; a graph's inputs, `<input>_lengths` and outputs by
name. A sequence is a list column: a list of steps, each a fixed-size list of features
(`list<fixed_size_list<float, F>>`, or `list<list<float>>` whose steps all hold F), or
a list of ids for an embedding input (`list<int64>`); a per-step target is a list too,
a static one a scalar or a fixed-size list. Without a lengths column a sequence's
length is its list's, so nothing is padded on disk. Class names live in the schema's
metadata (`rnnc.classes`: a JSON object of `classes` or `<output>_classes` to names).

Each column is decoded once, `BATCH_BYTES` of pages at a time (`decoded`), into flat
values `[steps of every row, *item]` and offsets `[rows + 1]` (`Column`, joined in
memory by `read_table`, or written to the data cache by `rnnc.parquet_spill`);
`ParquetTable.take(index)` pads the chosen rows only to the longest among them
(`rnnc.parquet_rows` reads them against a model). `iter_columns` hands out a batch of rows at a time instead, for the readers
that stream (`rnnc predict`, `rnnc evaluate`); `rnnc.parquet_peek` reads the footers
alone. pyarrow is imported lazily; without it, one line says to install `rnnc[data]`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

SUFFIX = ".parquet"
CLASSES_KEY = b"rnnc.classes"  # schema metadata: {"classes" | "<output>_classes": [names]}
STEPS_KEY = b"rnnc.steps"  # schema metadata: {column: the padded width it came from}, for a converter back to .npy
INSTALL = "reading Parquet needs pyarrow: pip install 'rnnc[data]'"


def pyarrow() -> Any:
    """`(pyarrow, pyarrow.parquet)`, or a `DataError` saying which extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(INSTALL) from None
    return pa, pq


def is_parquet(path: str | Path) -> bool:
    """A `.parquet` file, or a directory holding at least one."""
    path = Path(path)
    if path.is_dir():
        return any(p.suffix == SUFFIX for p in path.iterdir())
    return path.suffix == SUFFIX


def parquet_files(path: str | Path) -> list[Path]:
    """The file itself, or a directory's `.parquet` files in name order."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))
    if not files:
        raise DataError(f"{path}: a directory without .parquet files")
    return files


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def open_file(path: Path) -> Any:
    """A `pyarrow.parquet.ParquetFile`, its footer read; a damaged file is one line naming it."""
    pa, pq = pyarrow()
    try:
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)  # read a page at a time, not whole column chunks
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable Parquet file, truncated or corrupt ({_reason(err)})") from None


# --- columns ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a data set: `values` `[rows, *item]`, or for a list column
    `[steps of every row, *item]` with `offsets` `[rows + 1]` (row i's steps are
    `values[offsets[i]:offsets[i + 1]]`)."""

    name: str
    values: np.ndarray
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values) if self.offsets is None else len(self.offsets) - 1

    @property
    def item(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    def sizes(self, index: np.ndarray | None = None) -> np.ndarray:
        """Each row's number of steps (a list column's)."""
        assert self.offsets is not None
        sizes = np.diff(self.offsets)
        return sizes if index is None else sizes[index]

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def take(self, index: np.ndarray, steps: int | None = None, *, cut: bool = False) -> np.ndarray:
        """Rows `index`; a list column zero-padded at the end to `steps` (default: the
        longest of these rows); a longer row is an error, or with `cut` cut short."""
        if self.offsets is None:
            return self.values[index]
        sizes, steps = planned(self.name, self.sizes(index), index, steps, cut)
        out = np.zeros((len(index), steps, *self.item), self.values.dtype)
        total = int(sizes.sum())
        if total and not cut and len(index) and index[-1] - index[0] == len(index) - 1 and (np.diff(index) == 1).all():
            # rows in file order (a whole set, a chunk): their steps are one slice, placed
            # by a mask, with no gathered copy of the values
            out[np.arange(steps)[None, :] < sizes[:, None]] = self.values[self.offsets[index[0]] : self.offsets[index[-1] + 1]]
        elif total:
            row = np.repeat(np.arange(len(index)), sizes)
            within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            out[row, within] = self.values[np.repeat(self.offsets[index], sizes) + within]
        return out


def planned(name: str, sizes: np.ndarray, index: np.ndarray, steps: int | None, cut: bool) -> tuple[np.ndarray, int]:
    """(each taken row's steps, the width they are padded to) of a list column's rows
    `index` whose lists hold `sizes` steps, as `Column.take` pads them."""
    longest = int(sizes.max(initial=0))
    if steps is not None and longest > steps:
        if not cut:
            row = int(index[int(np.argmax(sizes))])
            raise DataError(f"column '{name}': row {row} has {longest} steps, more than the {steps} its sequence has")
        sizes = np.minimum(sizes, steps)
    return sizes, longest if steps is None else steps


def same_kind(first: Column, piece: Column) -> None:
    """A `DataError` unless `piece` holds what `first` holds (the same column of two files)."""
    if piece.item != first.item or (piece.offsets is None) != (first.offsets is None):
        what = lambda c: f"{'a list of ' if c.offsets is not None else ''}{list(c.item) or 'scalars'}"  # noqa: E731
        raise DataError(f"column '{first.name}' holds {what(first)} in one file and {what(piece)} in another")


def _numeric(pa: Any, kind: Any) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


def _is_list(pa: Any, kind: Any) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind))


LAYOUTS = ("numbers, a fixed-size list of numbers, a list of numbers (ids or per-step values), or a list of "
           "steps each a list of numbers")


def describe(pa: Any, kind: Any) -> str:
    """An arrow type in words: `float`, `a list of a fixed-size list of 3 float`."""
    if pa.types.is_fixed_size_list(kind):
        return f"a fixed-size list of {kind.list_size} {describe(pa, kind.value_type).removeprefix('a ')}"
    if _is_list(pa, kind):
        return f"a list of {describe(pa, kind.value_type).removeprefix('a ')}"
    return str(kind)


def type_problem(pa: Any, kind: Any) -> str | None:
    """Why a column of arrow type `kind` is no array rnnc reads, or None."""
    inner = kind.value_type if pa.types.is_fixed_size_list(kind) or _is_list(pa, kind) else None
    if _numeric(pa, kind) or (inner is not None and _numeric(pa, inner)):
        return None
    if _is_list(pa, kind) and (pa.types.is_fixed_size_list(inner) or _is_list(pa, inner)) and _numeric(pa, inner.value_type):
        return None
    return f"holds {describe(pa, kind)}; rnnc reads {LAYOUTS}"


def decode_column(pa: Any, origin: Path, name: str, array: Any) -> Column:
    """One column's values (a pyarrow array) as a `Column`."""
    if array.null_count:
        first = int(np.flatnonzero(np.asarray(array.is_null()))[0])
        raise DataError(f"{origin}: column '{name}' has {array.null_count} empty (null) rows, the first at row {first}")
    kind = array.type
    if problem := type_problem(pa, kind):
        raise DataError(f"{origin}: column '{name}' {problem}")
    if _numeric(pa, kind):
        return Column(name, array.to_numpy(zero_copy_only=False))
    if pa.types.is_fixed_size_list(kind):
        return Column(name, _flat(array.flatten(), kind.list_size, origin, name))
    offsets = np.asarray(array.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    steps = array.flatten()
    if steps.null_count:
        raise DataError(f"{origin}: column '{name}' has {steps.null_count} empty (null) steps")
    inner = kind.value_type
    if _numeric(pa, inner):
        return Column(name, steps.to_numpy(zero_copy_only=False), offsets)
    if pa.types.is_fixed_size_list(inner):
        return Column(name, _flat(steps.flatten(), inner.list_size, origin, name), offsets)
    widths = np.diff(np.asarray(steps.offsets, dtype=np.int64))
    if widths.size and (widths != widths[0]).any():
        at = int(np.flatnonzero(widths != widths[0])[0])
        row = int(np.searchsorted(offsets, at, side="right") - 1)
        raise DataError(f"{origin}: column '{name}': every step must hold the same number of features; row {row} "
                        f"has a step of {widths[at]} after steps of {widths[0]}")
    return Column(name, _flat(steps.flatten(), int(widths[0]) if widths.size else 0, origin, name), offsets)


def _flat(values: Any, width: int, origin: Path, name: str) -> np.ndarray:
    if values.null_count:
        raise DataError(f"{origin}: column '{name}' has {values.null_count} empty (null) values")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(-1, width) if width else flat.reshape(0, 0)


def _joined(pieces: list[Column]) -> Column:
    """One column from the same column of several files, in order."""
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    for piece in pieces[1:]:
        same_kind(first, piece)
    values = np.concatenate([p.values for p in pieces])
    if first.offsets is None:
        return Column(first.name, values)
    starts = np.cumsum([0] + [int(p.offsets[-1]) for p in pieces[:-1]])  # type: ignore[index]
    offsets = np.concatenate([pieces[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(pieces, starts)])  # type: ignore[index]
    return Column(first.name, values, offsets)


# --- a data set -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParquetTable:
    """A Parquet data set's columns, decoded; `classes` from the schema metadata."""

    origin: str
    columns: dict[str, Column]
    classes: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def take(self, index: np.ndarray, steps: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
        """Rows `index` of every column, list columns padded to `steps[name]` (default:
        the longest of these rows)."""
        steps = steps or {}
        return {name: column.take(index, steps.get(name)) for name, column in self.columns.items()}


BATCH_BYTES = 4 << 20  # about this many bytes of a file's (uncompressed) pages decoded at a time (a data cache builds in ~145 MiB)


def read_table(path: str | Path, names: Iterable[str] | None = None) -> ParquetTable:
    """The columns `names` (default: all) of the file or directory at `path` (a name no
    file has is left out: the caller names what is missing); a column only some files
    have, a damaged file, a column of a type rnnc cannot read: one line naming it."""
    pieces: dict[str, list[Column]] = {}
    classes: dict[str, list[str]] = {}
    rows = 0
    for _, count, columns in decoded(path, names, classes):
        rows += count
        for name, column in columns.items():
            pieces.setdefault(name, []).append(column)
    if rows == 0:
        raise DataError(f"{path}: holds no samples")
    try:
        columns = {name: _joined(parts) for name, parts in pieces.items()}
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    return ParquetTable(str(path), columns, classes)


def decoded(path: str | Path, names: Iterable[str] | None = None, classes: dict[str, list[str]] | None = None,
            budget: int | None = None) -> Iterator[tuple[Path, int, dict[str, Column]]]:
    """(file, rows, columns) of the data set at `path`, file after file, about `budget`
    (default `BATCH_BYTES`) bytes of pages at a time: what `read_table` joins and `rnnc.parquet_spill` writes
    out. `classes` gets each file's class names from its metadata."""
    pa, _ = pyarrow()
    files = parquet_files(path)
    first: list[str] | None = None
    for file in files:
        handle = open_file(file)
        present = handle.schema_arrow.names
        chosen = [n for n in present if names is None or n in names]
        if first is None:
            first = chosen
        elif sorted(chosen) != sorted(first):
            raise DataError(f"{file}: has columns {', '.join(chosen) or 'none'}, but {files[0]} has {', '.join(first) or 'none'}"
                            " (the files of a directory are one data set: give them the same columns)")
        if classes is not None:
            classes.update(_classes(file, handle.schema_arrow.metadata))
        meta = handle.metadata
        stored = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        rows = max(1, (budget or BATCH_BYTES) * meta.num_rows // max(1, stored))
        try:
            for batch in handle.iter_batches(batch_size=rows, columns=chosen, use_threads=False):
                yield file, batch.num_rows, {name: decode_column(pa, file, name, batch.column(name)) for name in chosen}
                del batch
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DataError(f"{file}: not a readable Parquet file, truncated or corrupt ({_reason(err)})") from None
        pa.default_memory_pool().release_unused()  # the pages' buffers, which its allocator would otherwise keep


def decoded_bytes(path: str | Path) -> int:
    """About how many bytes the data set at `path` holds decoded, from its footers."""
    total = 0
    for file in parquet_files(path):
        meta = open_file(file).metadata
        total += sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    return total


def _classes(path: Path, metadata: Mapping[bytes, bytes] | None) -> dict[str, list[str]]:
    raw = (metadata or {}).get(CLASSES_KEY)
    if raw is None:
        return {}
    try:
        names = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        names = None
    if not isinstance(names, dict) or not all(isinstance(v, list) for v in names.values()):
        raise DataError(f"{path}: its schema metadata '{CLASSES_KEY.decode()}' is not a JSON object of name lists")
    return {str(k): [str(n) for n in v] for k, v in names.items()}


def column_names(path: str | Path) -> list[str]:
    """The columns of the data set's first file, from its footer."""
    return list(open_file(parquet_files(path)[0]).schema_arrow.names)


def list_lengths(table: ParquetTable, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The list lengths of each list column among `names`."""
    return {n: table.columns[n].sizes() for n in names if n in table.columns and table.columns[n].offsets is not None}


def iter_columns(path: str | Path, names: Sequence[str], rows: int) -> Iterator[tuple[dict[str, Column], list[str] | None]]:
    """The columns `names` of the data set at `path`, `rows` at a time, file after file
    (each batch's columns, and the `classes` of the file's metadata)."""
    pa, _ = pyarrow()
    for file in parquet_files(path):
        handle = open_file(file)
        classes = _classes(file, handle.schema_arrow.metadata).get("classes")
        if missing := [n for n in names if n not in handle.schema_arrow.names]:
            raise DataError(f"{file}: no column '{missing[0]}' (the files of a directory are one data set: give them the same columns)")
        try:
            for batch in handle.iter_batches(batch_size=rows, columns=list(names), use_threads=False):
                yield {name: decode_column(pa, file, name, batch.column(name)) for name in names}, classes
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{file}: not a readable Parquet file, truncated or corrupt ({_reason(err)})") from None
