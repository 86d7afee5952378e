"""The data cache: data files decoded once onto disk, where training reads them by offset.

A Parquet data set (its pages compressed and encoded) and a compressed `.npz` (its
members deflated) cannot be read a row at a time where they are; `cached` decodes
such a set once into a directory of `.npy` files (`rnnc.parquet_spill`,
`rnnc.npz_spill`), which the next run on the same files reuses. The directory lives
under `cache_root()` (`RNNC_DATA_CACHE`, else `$XDG_CACHE_HOME/rnnc/data`, else
`~/.cache/rnnc/data`), named by a hash of the files' resolved paths and what was
decoded of them; its `manifest.json` records each file's size and `mtime_ns` when it
was decoded, and every file it wrote with its size: a source that changed since, or a
cache file missing or of another size, is decoded again in its place. A build goes into
a temporary directory beside it, renamed into place when complete, under a lock that
makes concurrent runs (the ranks of `--nproc`) wait for one build. `NpyWriter` writes a
`.npy` whose length is known only at the end, in bounded memory. Needs numpy only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

from .errors import DataError

VERSION = 1  # of the cache's layout: another version's directories are decoded again
MANIFEST = "manifest.json"
HEADER_BYTES = 256  # the room NpyWriter keeps for the header it writes at the end
T = TypeVar("T")


def cache_root() -> Path:
    """Where decoded data sets are kept (`RNNC_DATA_CACHE` wins)."""
    if chosen := os.environ.get("RNNC_DATA_CACHE"):
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnc" / "data"


def stamps(files: Sequence[Path]) -> list[list[Any]]:
    """Each file's resolved path, size and modification time in nanoseconds."""
    out = []
    for file in files:
        info = file.stat()
        out.append([str(file.resolve()), info.st_size, info.st_mtime_ns])
    return out


def cache_dir(kind: str, files: Sequence[Path], what: Any) -> Path:
    """The cache directory of `what` (the decoded columns) of `files`, decoded by `kind`."""
    key = json.dumps([VERSION, kind, [str(f.resolve()) for f in files], what], sort_keys=True)
    return cache_root() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def valid(folder: Path, sources: list[list[Any]]) -> dict[str, Any] | None:
    """The manifest of a complete cache of `sources` as they are now, or None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("version") != VERSION or manifest.get("sources") != sources:
            return None
        if any((folder / name).stat().st_size != size for name, size in manifest["files"].items()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


def cached(kind: str, files: Sequence[Path], what: Any, origin: str, read: Callable[[Path, dict[str, Any]], T],
           build: Callable[[Path], dict[str, Any]] | None) -> T | None:
    """`read(directory, manifest)` of `files` decoded by `build(directory)` (which writes
    its files there and returns what the manifest holds besides them), a valid cache
    reused; without `build`, None where there is none. A cache that `read` finds
    damaged (a `DataError`, `OSError` or `ValueError`) is decoded again once; a build
    that fails leaves nothing behind."""
    folder = cache_dir(kind, files, what)
    sources = stamps(files)
    for attempt in range(2):
        manifest = valid(folder, sources)
        if manifest is None:
            if build is None:
                return None
            manifest = _build(folder, sources, origin, build)
        try:
            return read(folder, manifest)
        except (DataError, OSError, ValueError, KeyError, TypeError) as err:
            (folder / MANIFEST).unlink(missing_ok=True)  # decoded again, now or by the next run
            if build is None:
                return None
            if attempt:
                raise DataError(f"{folder}: the data cache of {origin} is damaged ({err}); delete the directory") from None
    raise AssertionError("unreachable")


def _build(folder: Path, sources: list[list[Any]], origin: str, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{origin}: cannot create the data cache {folder.parent} ({err.strerror or err}); "
                        "set RNNC_DATA_CACHE to a writable directory") from None
    with _locked(folder.parent / f".{folder.name}.lock"):
        if (manifest := valid(folder, sources)) is not None:  # another process built it meanwhile
            return manifest
        if folder.exists():
            print(f"rnnc: {folder}: the cache of {origin} is out of date or damaged; decoding it again", file=sys.stderr)
        else:
            print(f"rnnc: decoding {origin} once into the data cache {folder} (RNNC_DATA_CACHE moves it)", file=sys.stderr)
        temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            extra = build(temp)
            written = {p.name: p.stat().st_size for p in sorted(temp.iterdir())}
            manifest = {"version": VERSION, "origin": origin, "sources": sources, "files": written, **extra}
            (temp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                folder.rename(old)
                temp.rename(folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                temp.rename(folder)
        except OSError as err:  # the source's read errors are DataErrors already: writing failed (a full disk)
            shutil.rmtree(temp, ignore_errors=True)
            raise DataError(f"{origin}: cannot write the data cache {folder} ({err.strerror or err}); free disk space "
                            "or set RNNC_DATA_CACHE to another directory") from None
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    return manifest


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def progress(total: int, unit: str, desc: str) -> Any:
    """A tqdm bar on stderr, shown on a terminal once the work has taken 2 s."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, delay=2, disable=None, dynamic_ncols=True,
                unit_scale=unit == "B", leave=False)


# --- a .npy written piece by piece --------------------------------------------------


def npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int = HEADER_BYTES) -> bytes:
    """A version 1.0 `.npy` header of `size` bytes (padded with spaces, as numpy pads)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    if 10 + len(text) + 1 > size:
        raise ValueError(f"a .npy header for {shape} does not fit in {size} bytes")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", size - 10) + text + b" " * (size - 11 - len(text)) + b"\n"


class NpyWriter:
    """A `.npy` of rows `[*, *item]` appended in pieces; its header, with the row count,
    is written by `close`. A piece of another dtype promotes the file (as
    `np.concatenate` would), rewriting what is there."""

    def __init__(self, path: Path, dtype: np.dtype, item: tuple[int, ...]):
        self.path, self.dtype, self.item, self.rows = path, np.dtype(dtype), tuple(item), 0
        self._file: BinaryIO = path.open("wb")
        self._file.write(b"\0" * HEADER_BYTES)

    def append(self, values: np.ndarray) -> None:
        if values.dtype != self.dtype and np.result_type(self.dtype, values.dtype) != self.dtype:
            self._promote(np.result_type(self.dtype, values.dtype))
        np.ascontiguousarray(values, dtype=self.dtype).tofile(self._file)
        self.rows += len(values)

    def _promote(self, dtype: np.dtype) -> None:
        self._file.close()
        old = self.path.with_name(self.path.name + ".old")
        self.path.rename(old)
        row = int(np.prod(self.item, dtype=np.int64))
        with old.open("rb") as source, self.path.open("wb") as target:
            target.write(b"\0" * HEADER_BYTES)
            source.seek(HEADER_BYTES)
            step = max(1, (16 << 20) // max(1, row * self.dtype.itemsize))
            for _ in range(0, self.rows, step):
                part = np.fromfile(source, dtype=self.dtype, count=step * row)
                part.astype(dtype).tofile(target)
        old.unlink()
        self.dtype = np.dtype(dtype)
        self._file = self.path.open("r+b")
        self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        self._file.seek(0)
        self._file.write(npy_header(self.dtype, (self.rows, *self.item)))
        self._file.close()
