"""Input files for `rnnc predict`, read in bounded memory and checked before any output.

Inputs: `.npy` and `.npz` (see `predict_arrays`), `.csv` (one sequence per row, its
steps flattened: `T * F` values, step after step; rows may differ in length for
variable-length models, and are then padded at the end and given lengths) and `.txt`
(raw text, one per line, for a model trained on text; held in memory). Every row of
the input is one row of the output, in order: nothing is skipped that could shift
them (a blank line between rows is an error, not a skipped row; only blank lines at
the end are ignored), and a header is a first CSV row of nothing but non-numbers,
unless `header=` says. A CSV file is read twice (checked whole, then run), so its
second pass must see the rows of the first; a CSV or text input that is not a regular
file (a pipe) is read once, into memory. Each batch holds at most `BATCH_VALUES`
values, so one huge row does not make every batch huge.
"""

from __future__ import annotations

import csv
import os
import stat
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import StringIO
from typing import IO

import numpy as np

from rnnc.cli.predict_arrays import FLOAT32_MAX, read_npy, read_npz
from rnnc.errors import DataError, one_line
from rnnc.runtime import Predictor

Batch = tuple[np.ndarray, np.ndarray | None]
INPUT_SUFFIXES = (".npz", ".npy", ".csv", ".txt")
BATCH_VALUES = 1 << 24  # values in one batch at most (64 MiB of float32)
PIPE_BYTES = 1 << 30  # what a pipe may hold, read into memory
CELL_SHOWN = 40  # characters of a cell quoted in a message


@dataclass(frozen=True)
class Source:
    """An input file: how many sequences, and `batches(size)` to read them; `texts`
    holds the raw texts of a `.txt` input, in order."""

    path: str
    count: int
    batches: Callable[[int], Iterator[Batch]] = field(repr=False)
    texts: list[str] | None = field(default=None, repr=False)


def open_input(path: str, predictor: Predictor, *, header: bool | None = None) -> Source:
    """The input at `path`. `header` (CSV only): True, the first row is always a header;
    False, never; None, when none of its cells is a number."""
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    if suffix not in INPUT_SUFFIXES:
        raise DataError(f"{path}: unknown input format '{suffix}' (use {', '.join(INPUT_SUFFIXES)})")
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
        if os.path.isdir(path):
            raise DataError(f"{path}: is a directory, not an input file")
        if suffix == ".npy" or suffix == ".npz":
            if not regular:
                raise DataError(f"{path}: not a regular file; {suffix} input is read twice, so save it to a file first")
            count, batches = (read_npy if suffix == ".npy" else read_npz)(path, predictor, rows_for)
            return Source(path, count, batches)
        text = None if regular else _read_pipe(path)
        if suffix == ".csv":
            return _csv(path, predictor, header, text)
        return _txt(path, predictor, text)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None


def rows_for(size: int, row_values: int) -> int:
    """Rows in a batch of at most `size`: fewer when its rows are long."""
    return max(1, min(size, BATCH_VALUES // max(1, row_values)))


def _read_pipe(path: str) -> str:
    with open(path, "rb") as handle:
        data = handle.read(PIPE_BYTES + 1)
    if len(data) > PIPE_BYTES:
        raise DataError(f"{path}: not a regular file, and over {PIPE_BYTES >> 30} GiB; save it to a file first")
    return data.decode("utf-8-sig")


def _opened(path: str, text: str | None) -> IO[str]:
    # utf-8-sig: a BOM (Excel writes one) is not part of the first cell
    return StringIO(text, newline="") if text is not None else open(path, newline="", encoding="utf-8-sig")


# --- csv ------------------------------------------------------------------------------


def _csv(path: str, predictor: Predictor, header: bool | None, text: str | None) -> Source:
    features = 1 if predictor.token_ids else (predictor.features or 1)
    widths = array("q")
    no_tokens = None  # the first row of nothing but padding ids
    for line, values in _csv_rows(path, predictor, header, text):
        width = len(values)
        if width % features:
            raise DataError(f"{path}:{line}: {width} values are not whole steps of {features} features")
        if predictor.timesteps is not None and width != predictor.timesteps * features:
            raise DataError(
                f"{path}:{line}: expected {predictor.timesteps * features} values "
                f"({predictor.timesteps} steps x {features} features), got {width}"
            )
        widths.append(width)
        if no_tokens is None and predictor.lengths_from_ids and not any(values):
            no_tokens = line
    if not widths:
        raise DataError(f"{path}: no sequences (an empty file)")
    ragged = min(widths) != max(widths)
    if ragged and not predictor.takes_lengths:
        raise DataError(f"{path}: rows differ in length, but the model takes fixed-length sequences")
    if no_tokens is not None and not ragged:  # rows of one length: each one's length comes from its ids
        raise DataError(f"{path}:{no_tokens}: the row has no tokens (every id is 0, the padding id of mask_zero)")
    # an output with a time axis keeps the input's: every batch is padded alike
    padded = max(widths) if predictor.sequence_output else None
    dtype = np.int64 if predictor.token_ids else np.float32

    def batches(size: int) -> Iterator[Batch]:
        rows: list[list] = []
        done, widest = 0, 0
        for line, values in _csv_rows(path, predictor, header, text):
            if done + len(rows) >= len(widths) or len(values) != widths[done + len(rows)]:
                raise DataError(f"{path}:{line}: the file changed while it was read; run again on a file that stays put")
            width = padded or max(widest, len(values))
            if rows and (len(rows) == size or (len(rows) + 1) * width > BATCH_VALUES):
                yield _csv_batch(rows, padded, features, dtype, ragged)
                done, rows, widest = done + len(rows), [], 0
            rows.append(values)
            widest = max(widest, len(values))
        if done + len(rows) != len(widths):
            raise DataError(f"{path}: the file changed while it was read (it now ends at row {done + len(rows)} of {len(widths)})")
        if rows:
            yield _csv_batch(rows, padded, features, dtype, ragged)

    return Source(path, len(widths), batches)


def _csv_rows(path: str, predictor: Predictor, header: bool | None, text: str | None) -> Iterator[tuple[int, list]]:
    """(physical line, values) of each row. Blank lines may only end the file."""
    with _opened(path, text) as handle:
        reader = csv.reader(handle, strict=True)  # strict: a stray quote is an error, not data
        blank, first = None, True
        while True:
            line = reader.line_num + 1  # where the row starts, however many lines it spans
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise DataError(f"{path}:{line}: {_csv_problem(err)}") from None
            cells = [c.strip() for c in row]
            if nul := next((c for c in cells if "\0" in c), None):  # before the header test: UTF-16 looks like one
                raise DataError(f"{path}:{line}: {_shown(nul)} holds a NUL character (UTF-16? save it as UTF-8)")
            if not any(cells):
                blank = blank or line
                continue
            if blank is not None:
                raise DataError(f"{path}:{blank}: blank line; every row is one sequence (only the end of the file may be blank)")
            if first:
                first = False
                if header or (header is None and not any(_is_number(c) for c in cells)):
                    continue
            yield line, _values(path, line, cells, predictor)


def _csv_problem(err: csv.Error) -> str:
    text = str(err)
    if "unexpected end of data" in text:
        return "a quoted cell starts in this row and is never closed"
    if "field larger than field limit" in text:
        return f"a cell longer than {csv.field_size_limit():,} characters (not a number)"
    return f"not a CSV row ({text})"


def _values(path: str, line: int, cells: list[str], predictor: Predictor) -> list:
    ids = predictor.token_ids
    try:
        values = [int(c) for c in cells] if ids else [float(c) for c in cells]
    except ValueError:
        bad = next(c for c in cells if not _is_number(c, ids))
        kind = "an integer token id" if ids else "a number"
        raise DataError(f"{path}:{line}: {_shown(bad)} is not {kind}") from None
    if ids:
        top = predictor.vocab_size if predictor.vocab_size is not None else 1 << 63
        if not all(0 <= v < top for v in values):
            bad = next(c for c, v in zip(cells, values, strict=True) if not 0 <= v < top)
            raise DataError(f"{path}:{line}: token id {_shown(bad)} is outside [0, {top - 1}]"
                            + (f" (vocab_size {top})" if predictor.vocab_size is not None else ""))
    elif not all(-FLOAT32_MAX <= v <= FLOAT32_MAX for v in values):  # NaN fails both
        bad = next(c for c, v in zip(cells, values, strict=True) if not -FLOAT32_MAX <= v <= FLOAT32_MAX)
        raise DataError(f"{path}:{line}: {_shown(bad)} is NaN, inf or beyond float32's range (NaN and inf are not data)")
    return values


def _is_number(cell: str, ids: bool = False) -> bool:
    try:
        int(cell) if ids else float(cell)
    except ValueError:
        return False
    return True


def _shown(cell: str) -> str:
    """A cell as a message quotes it: escaped (a BOM or a NUL shows), and cut short."""
    return "'" + one_line(cell if len(cell) <= CELL_SHOWN else cell[:CELL_SHOWN] + "...") + "'"


def _csv_batch(rows: list[list], padded: int | None, features: int, dtype: type, ragged: bool) -> Batch:
    width = padded or max(len(r) for r in rows)
    x = np.zeros((len(rows), width), dtype=dtype)
    for i, values in enumerate(rows):
        x[i, : len(values)] = values
    steps = width // features
    shape = (len(rows), steps) if dtype is np.int64 else (len(rows), steps, features)
    lengths = np.array([len(v) // features for v in rows], dtype=np.int64) if ragged else None
    return x.reshape(shape), lengths


# --- raw text -------------------------------------------------------------------------


def _txt(path: str, predictor: Predictor, text: str | None) -> Source:
    """One text per line: only `\\n` (or `\\r\\n`) ends a line, so a bare CR inside a
    text does not make two. A blank line between texts is an error; at the end, ignored."""
    if predictor.vocab is None:
        raise DataError(f"{path}: a .txt input holds raw text, but {predictor.path} was not trained on text (no vocabulary in it)")
    if text is None:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    texts: list[str] = []
    blank = None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            blank = blank or number
            continue
        if blank is not None:
            raise DataError(f"{path}:{blank}: blank line; every line is one text (only the end of the file may be blank)")
        texts.append(line)
    if not texts:
        raise DataError(f"{path}: no text (every line is blank)")

    def batches(size: int) -> Iterator[Batch]:
        for start in range(0, len(texts), size):
            yield predictor.encode_texts(texts[start : start + size])

    return Source(path, len(texts), batches, texts)
