"""Input and output files for `rnnc predict`, read and written in bounded memory.

Inputs: `.npy` (the array `x`, memory-mapped), `.npz` (arrays `x` and optional
`lengths`; `x` is streamed out of the archive batch by batch), `.txt` (raw text, one
per line, for a model trained on text; held in memory) and `.csv` (one sequence
per row, its steps flattened: `T * F` values, step after step; an optional header
line; rows may differ in length for variable-length models, and are then padded at
the end and given lengths). CSV is read twice: once to check every row and size the
batch, once to run it. Outputs: `.npy`, or `.csv` rows (`%.9g`, enough to round-trip
float32), to a file or stdout; for `.txt` input the `.csv` rows are `text,label,probability`
(`text,value...` for regression). Files are written atomically.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from rnnc.errors import DataError
from rnnc.runtime import Predictor

Batch = tuple[np.ndarray, np.ndarray | None]
INPUT_SUFFIXES = (".npz", ".npy", ".csv", ".txt")


@dataclass(frozen=True)
class Source:
    """An input file: how many sequences, and `batches(size)` to read them; `texts`
    holds the raw texts of a `.txt` input, in order."""

    path: str
    count: int
    batches: Callable[[int], Iterator[Batch]] = field(repr=False)
    texts: list[str] | None = field(default=None, repr=False)


def open_input(path: str, predictor: Predictor) -> Source:
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    try:
        if suffix == ".npy":
            return _npy(path)
        if suffix == ".npz":
            return _npz(path)
        if suffix == ".csv":
            return _csv(path, predictor)
        if suffix == ".txt":
            return _txt(path, predictor)
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None
    raise DataError(f"{path}: unknown input format '{suffix}' (use {', '.join(INPUT_SUFFIXES)})")


def _npy(path: str) -> Source:
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{path}: not a numeric .npy array ({err})") from None
    _check_array(path, x.shape, x.dtype)

    def batches(size: int) -> Iterator[Batch]:
        for start in range(0, len(x), size):
            yield np.asarray(x[start : start + size]), None

    return Source(path, len(x), batches)


def _npz(path: str) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not an .npz archive") from None
    names = {name.removesuffix(".npy"): name for name in archive.namelist()}
    if "x" not in names:
        raise DataError(f"{path}: no array 'x' (it has: {', '.join(sorted(names)) or 'nothing'})")
    shape, dtype = _member_header(path, archive, names["x"])
    lengths = _member_array(path, archive, names["lengths"]) if "lengths" in names else None
    if lengths is not None and lengths.shape != (shape[0],):
        raise DataError(f"{path}: 'lengths' has shape {list(lengths.shape)}, 'x' holds {shape[0]} sequences")

    def batches(size: int) -> Iterator[Batch]:
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        with archive.open(names["x"]) as member:
            _read_header(member)
            for start in range(0, shape[0], size):
                n = min(size, shape[0] - start)
                data = member.read(n * row)
                if len(data) != n * row:
                    raise DataError(f"{path}: 'x' ends early (truncated archive)")
                x = np.frombuffer(data, dtype=dtype).reshape(n, *shape[1:])
                yield x, None if lengths is None else lengths[start : start + n]

    return Source(path, shape[0], batches)


def _read_header(member: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    return np.lib.format.read_array_header_2_0(member)


def _member_header(path: str, archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with archive.open(name) as member:
            shape, fortran, dtype = _read_header(member)
    except (ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: '{name}' is not a numeric array ({err})") from None
    _check_array(path, shape, dtype)
    if fortran and len(shape) > 1:
        raise DataError(f"{path}: 'x' is stored in Fortran order; save it with np.savez(..., x=np.ascontiguousarray(x))")
    return shape, dtype


def _member_array(path: str, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    try:
        with archive.open(name) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: '{name}' is not a numeric array ({err})") from None


def _check_array(path: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.kind not in "fiub":
        raise DataError(f"{path}: 'x' holds {dtype} values, not numbers")
    if len(shape) < 2:
        raise DataError(f"{path}: 'x' has shape {list(shape)}; it needs [sequences, time, ...]")
    if shape[0] == 0:
        raise DataError(f"{path}: no sequences in 'x'")


# --- csv ------------------------------------------------------------------------------


def _csv(path: str, predictor: Predictor) -> Source:
    features = 1 if predictor.token_ids else (predictor.features or 1)
    parse = int if predictor.token_ids else float
    count, widths, longest = 0, set(), 0
    for line, values in _csv_rows(path, parse):
        width = len(values)
        if width % features:
            raise DataError(f"{path}:{line}: {width} values are not whole steps of {features} features")
        if predictor.timesteps is not None and width != predictor.timesteps * features:
            raise DataError(
                f"{path}:{line}: expected {predictor.timesteps * features} values "
                f"({predictor.timesteps} steps x {features} features), got {width}"
            )
        count, longest = count + 1, max(longest, width // features)
        widths.add(width)
    if count == 0:
        raise DataError(f"{path}: no sequences (an empty file)")
    if len(widths) > 1 and not predictor.takes_lengths:
        raise DataError(f"{path}: rows differ in length, but the model takes fixed-length sequences")
    ragged = len(widths) > 1
    dtype = np.int64 if predictor.token_ids else np.float32

    def batches(size: int) -> Iterator[Batch]:
        rows: list[list[float]] = []
        for _, values in _csv_rows(path, parse):
            rows.append(values)
            if len(rows) == size:
                yield _csv_batch(rows, longest, features, dtype, ragged)
                rows = []
        if rows:
            yield _csv_batch(rows, longest, features, dtype, ragged)

    return Source(path, count, batches)


def _csv_rows(path: str, parse: type) -> Iterator[tuple[int, list]]:
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            fields = [f.strip() for f in row]
            if not any(fields):
                continue
            try:
                yield number, [parse(f) for f in fields]
            except ValueError:
                if number == 1:
                    continue  # a header line
                bad = next(f for f in fields if not _parses(parse, f))
                kind = "an integer token id" if parse is int else "a number"
                raise DataError(f"{path}:{number}: '{bad}' is not {kind}") from None


def _parses(parse: type, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _csv_batch(rows: list[list], longest: int, features: int, dtype: type, ragged: bool) -> Batch:
    x = np.zeros((len(rows), longest * features), dtype=dtype)
    for i, values in enumerate(rows):
        x[i, : len(values)] = values
    shape = (len(rows), longest) if dtype is np.int64 else (len(rows), longest, features)
    lengths = np.array([len(v) // features for v in rows], dtype=np.int64) if ragged else None
    return x.reshape(shape), lengths


# --- raw text -------------------------------------------------------------------------


def _txt(path: str, predictor: Predictor) -> Source:
    """One text per line, tokenised with the vocabulary in the model; blank lines hold
    no text and are skipped (the output names each text, so rows stay matched)."""
    if predictor.vocab is None:
        raise DataError(f"{path}: a .txt input holds raw text, but {predictor.path} was not trained on text (no vocabulary in it)")
    try:
        with open(path, encoding="utf-8") as handle:
            texts = [line.strip() for line in handle if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    if not texts:
        raise DataError(f"{path}: no text (every line is blank)")

    def batches(size: int) -> Iterator[Batch]:
        for start in range(0, len(texts), size):
            yield predictor.encode_texts(texts[start : start + size])

    return Source(path, len(texts), batches, texts)

