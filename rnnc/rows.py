"""Row sources: training data that stays where it is and hands out batches of rows by index.

A `Rows` is what the training loop gathers each batch from, whatever holds the data:
arrays in memory or memory-mapped (`ArrayRows`), a directory of `.npy` files read by
offset (`NpyDirRows`; an uncompressed `.npz`'s members the same way, `stored_npz`; a
compressed one's inflated into the data cache, `rnnc.npz_spill`), ragged Parquet list
columns (`rnnc.parquet_rows`, from memory or the data cache, `rnnc.parquet_spill`). It knows nothing
of the model: the caller says which arrays are sequences and which array holds their
lengths (`Column.lengths`), and `rnnc.dataset` / `rnnc.graph_data` turn the rows it
hands out into a batch in the loss's layout, with the same checks as a whole file.
A source never holds more than the rows it was asked for. Needs numpy only.

The contract every source keeps (tested in tests/data_scale for each):

- `columns`: every per-row array by its data-file name, as one `Column` each: the
  whole array's `shape` (N first; a sequence's time axis at the longest row, as a
  padded `.npz` would hold it), its `dtype` as stored, and `lengths`, the name of the
  column holding each row's real steps along axis 1 where the array is a sequence
  (None: every step is real, or the array has no time axis). Names follow the data
  files: a v1 chain `x`, `y`, `lengths` (`x`'s and, for a per-step output, `y`'s
  lengths); a v2 graph each input's name, `<input>_lengths`, each output's name.
- `constants`: arrays that are not per row (`classes`, `<output>_classes`).
- `len(rows)`: N, the same for every column.
- `take(index)`: the rows at `index` (int64, 1-D, any order, repeats allowed: a
  data-parallel shard repeats the epoch's head), every column, row i of each array
  being row `index[i]` of the source, in the stored dtype. A column with `lengths` is
  cut to the longest real length among those rows (at least 1 step); below a row's
  length its values are the stored ones, past it they are zeros for a ragged source
  and whatever was stored for a padded one (readers zero what counts, as for a file).
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import DataError
from .npy_header import Header, product, read_header


@dataclass(frozen=True)
class Column:
    """One per-row array of a source: its whole shape, stored dtype, and the column
    holding its lengths along axis 1 when it is a sequence."""

    shape: tuple[int, ...]
    dtype: np.dtype
    lengths: str | None = None


class Rows(Protocol):
    """A source of training rows; see the module docstring for the contract."""

    origin: str  # the file or directory, as every message names it
    columns: Mapping[str, Column]
    constants: Mapping[str, np.ndarray]

    def __len__(self) -> int: ...

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]: ...


def longest(rows: Rows, arrays: Mapping[str, np.ndarray], name: str) -> int:
    """How many steps `take` keeps of column `name` for rows whose arrays are `arrays`."""
    column = rows.columns[name]
    if column.lengths is None or len(column.shape) < 2:
        return column.shape[1] if len(column.shape) > 1 else 0
    lengths = arrays[column.lengths]
    return max(1, int(lengths.max())) if lengths.size else 1


def chunks(rows: Rows, size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(first row, `take` of the next `size` rows) over the whole source, in order:
    what value checks walk, holding one chunk at a time."""
    for start in range(0, len(rows), size):
        yield start, rows.take(np.arange(start, min(len(rows), start + size), dtype=np.int64))


def chunk_rows(rows: Rows, budget: int = 64 << 20) -> int:
    """Rows per chunk so that one chunk of every column is about `budget` bytes."""
    per_row = sum(product(c.shape[1:]) * c.dtype.itemsize for c in rows.columns.values()) or 1
    return max(1, budget // per_row)


# --- arrays in memory, or memory-mapped ---------------------------------------------


class ArrayRows:
    """Rows of arrays already open: in memory, or `np.memmap` / `np.load(mmap_mode="r")`
    (then only the rows taken are read)."""

    def __init__(self, arrays: Mapping[str, np.ndarray], origin: str, lengths: Mapping[str, str] | None = None,
                 constants: Mapping[str, np.ndarray] | None = None):
        self.origin = origin
        self.arrays = dict(arrays)
        pairs = lengths or {}
        self.columns = {name: Column(tuple(a.shape), a.dtype, pairs.get(name)) for name, a in self.arrays.items()}
        self.constants = dict(constants or {})
        counts = {a.shape[0] if a.ndim else 0 for a in self.arrays.values()}
        if len(counts) > 1:
            raise DataError(f"{origin}: its arrays hold different numbers of rows ({', '.join(map(str, sorted(counts)))})")
        self._n = counts.pop() if counts else 0

    def __len__(self) -> int:
        return self._n

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        # numpy gathers a memmap's rows fastest in file order; hand them back in index order
        order = np.argsort(index, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        ascending = index[order]
        out = {}
        for name, array in self.arrays.items():
            out[name] = np.asarray(array[ascending])[back]
        for name in self.columns:
            steps = longest(self, out, name)
            if self.columns[name].lengths is not None and steps < out[name].shape[1]:
                out[name] = np.ascontiguousarray(out[name][:, :steps])
        return out


# --- a directory of .npy files ------------------------------------------------------


@dataclass(frozen=True)
class NpyFile:
    path: Path
    header: Header


class NpyDirRows:
    """A directory of `.npy` files, one per array (`x.npy`, `y.npy`, `lengths.npy`,
    `classes.npy`; a graph's arrays by name), each row read with `os.pread` at its
    offset. Not a memory map on purpose: the pages of a mapped file count in the
    process's resident memory as it is read, an epoch over a file larger than memory
    would touch all of it, while read pages stay in the kernel's cache, outside it.
    Arrays whose first axis is not the row count (`classes`) are `constants`, read whole.
    `files` (from `stored_npz`) reads the members of an uncompressed `.npz` the same way."""

    CONSTANTS = ("classes",)  # and any name ending in `_classes`

    def __init__(self, path: str | os.PathLike[str], lengths: Mapping[str, str] | None = None, origin: str | None = None,
                 files: Mapping[str, NpyFile] | None = None):
        self.path = Path(path)
        self.origin = origin or str(path)
        files = dict(files) if files is not None else read_npy_dir(self.path, self.origin)
        self.constants = {}
        for name in [n for n in files if n in self.CONSTANTS or n.endswith("_classes")]:
            self.constants[name] = _read_whole(files.pop(name), self.origin, name)
        pairs = lengths or {}
        self.columns = {name: Column(f.header.shape, f.header.dtype, pairs.get(name)) for name, f in files.items()}
        self._files = files
        self._fds: dict[str, int] = {}
        problems = [f"{self.origin}: '{name}' is a scalar, not one value per row" for name, f in files.items() if not f.header.shape]
        counts = sorted({f.header.shape[0] for f in files.values() if f.header.shape})
        if len(counts) > 1:
            have = ", ".join(f"{name} {f.header.shape[0]}" for name, f in files.items() if f.header.shape)
            problems.append(f"{self.origin}: its arrays hold different numbers of rows ({have})")
        if problems:
            raise DataError("\n".join(problems))
        self._n = counts[0] if counts else 0

    def __len__(self) -> int:
        return self._n

    def _fd(self, name: str) -> int:
        if name not in self._fds:
            self._fds[name] = os.open(self._files[name].path, os.O_RDONLY)
        return self._fds[name]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self) -> dict:  # a copy opens its own descriptors
        return {**self.__dict__, "_fds": {}}

    def _read(self, name: str, index: np.ndarray, steps: int | None) -> np.ndarray:
        file = self._files[name]
        header, column = file.header, self.columns[name]
        row = header.row_bytes
        keep = row if steps is None else product((steps, *header.shape[2:])) * header.dtype.itemsize
        shape = (len(index), *column.shape[1:]) if steps is None else (len(index), steps, *column.shape[2:])
        out = np.empty(shape, dtype=header.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
        fd = self._fd(name)
        for i, at in enumerate(index.tolist()):
            got = os.preadv(fd, [view[i * keep : (i + 1) * keep]], header.offset + at * row) if keep else 0
            if got != keep:
                raise DataError(f"{file.path}: truncated: row {at} ends past the end of the file")
        return out

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self._n):
            raise IndexError(f"{self.origin}: rows {index.min()}..{index.max()} outside [0, {self._n})")
        out = {name: self._read(name, index, None) for name, c in self.columns.items() if c.lengths is None}
        for name, column in self.columns.items():
            if column.lengths is not None:
                out[name] = self._read(name, index, longest(self, out, name))
        return out


def stored_npz(path: Path, origin: str) -> dict[str, NpyFile] | None:
    """The members of a `.npz` written by `np.savez` (every member stored, not
    compressed) by array name, each header's offset counted from the start of the
    archive, so that `NpyDirRows(path, files=...)` reads its rows in place. None for
    an archive that cannot be read so (compressed, or not a zip of `.npy` members):
    the caller loads it whole, and its reader names what is wrong with it."""
    try:
        with zipfile.ZipFile(path) as archive, path.open("rb") as stream:
            infos = archive.infolist()
            if not infos or any(i.compress_type != zipfile.ZIP_STORED or not i.filename.endswith(".npy") for i in infos):
                return None
            files = {}
            for info in infos:
                stream.seek(info.header_offset)
                local = stream.read(30)
                if len(local) < 30 or local[:4] != b"PK\x03\x04":
                    return None
                start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
                stream.seek(start)
                name = info.filename[: -len(".npy")]
                header = read_header(stream, origin, name)
                check_header(header, f"{origin}: '{name}'", start, info.file_size)
                files[name] = NpyFile(path, header)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    return files


def is_npy_dir(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a directory of `.npy` arrays (a data set in the npy-directory layout)."""
    path = Path(path)
    return path.is_dir() and any(path.glob("*.npy"))


def read_npy_dir(path: Path, origin: str) -> dict[str, NpyFile]:
    """Every `.npy` in the directory `path` by its name, its header checked against the
    file's size: a truncated or damaged file is a `DataError` naming it; several are
    reported together."""
    if not path.is_dir():
        raise DataError(f"{origin}: no such directory" if not path.exists() else f"{origin}: is not a directory")
    files, problems = {}, []
    for file in sorted(path.glob("*.npy")):
        try:
            files[file.stem] = NpyFile(file, checked_header(file))
        except DataError as err:
            problems.append(str(err))
        except OSError as err:
            problems.append(f"{file}: cannot read ({err.strerror or err})")
    if problems:
        raise DataError("\n".join(problems))
    if not files:
        raise DataError(f"{origin}: holds no .npy files (expected x.npy, y.npy and optionally lengths.npy, classes.npy)")
    return files


def checked_header(file: Path) -> Header:
    """The `.npy` header of `file`, checked by `check_header` against the file's size."""
    with file.open("rb") as stream:
        header = read_header(stream, str(file), file.stem)
    check_header(header, str(file), 0, file.stat().st_size)
    return header


def check_header(header: Header, what: str, start: int, size: int) -> None:
    """`header`'s array is one rows can be read from, and its file (or archive member),
    `size` bytes from `start`, holds all of it."""
    if header.dtype.hasobject:
        raise DataError(f"{what}: holds pickled or object arrays, which rnnc never loads")
    if header.fortran and len(header.shape) > 1:
        raise DataError(f"{what}: is stored in Fortran order; save it C-contiguous (np.save(path, np.ascontiguousarray(a)))")
    wanted = header.offset - start + product(header.shape) * header.dtype.itemsize
    if size < wanted:
        raise DataError(f"{what}: truncated: its header says {list(header.shape)} {header.dtype} "
                        f"({wanted} bytes), the file has {size}")


def _read_whole(file: NpyFile, origin: str, name: str) -> np.ndarray:
    with file.path.open("rb") as stream:
        stream.seek(file.header.offset)
        raw = stream.read(product(file.header.shape) * file.header.dtype.itemsize)
    return np.frombuffer(raw, dtype=file.header.dtype).reshape(file.header.shape).copy()
