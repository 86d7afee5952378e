"""`.npy` and `.npz` inputs for `rnnc predict`, checked whole before the first batch runs.

An array's header is only a claim: its shape must be whole numbers >= 0 and the size
it implies must be the number of bytes the file (or archive member) really holds, so
nothing is allocated on a header's word (2**40 rows would be an 8 TiB array). Then one
pass over the data, in bounded memory, checks what only the values show (NaN, inf,
numbers beyond float32, token ids outside the vocabulary) and, for an archive member,
its CRC, which zipfile verifies only once a member is read to its end: a flipped byte
is found before any output is written, not after 33 KB of it went to stdout. That pass
costs one extra read (for `.npz`, one extra decompression). Then `x` of an `.npy` is
memory-mapped, `x` of an `.npz` streamed out of the archive again, batch by batch.
"""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator

import numpy as np

from rnnc.errors import DataError
from rnnc.npy_header import Header, read_header
from rnnc.npy_header import product as _product
from rnnc.npy_header import reason as _reason
from rnnc.runtime import Predictor

Batch = tuple[np.ndarray, np.ndarray | None]
Batches = Callable[[int], Iterator[Batch]]
CHECK_BYTES = 16 << 20  # what the checking pass holds at a time
FLOAT32_MAX = float(np.finfo(np.float32).max)
# what reading a damaged archive member can raise: a bad CRC, a broken deflate stream,
# an end before the promised size, a compression method this Python lacks
DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError)


def read_npy(path: str, predictor: Predictor, rows_for: Callable[[int, int], int]) -> tuple[int, Batches]:
    """(sequences, batches) of an `.npy` holding `x`; `rows_for(size, row_values)` is how
    many rows a batch of `size` may hold."""
    with open(path, "rb") as handle:
        header = read_header(handle, path, "x")
        size = os.fstat(handle.fileno()).st_size
    _check_x(path, header, size - header.offset)
    x = _memmap(path, header)
    _check_values(path, predictor, _chunks(lambda n, start: np.asarray(x[start : start + n]), header), lengths_given=False)

    def batches(size: int) -> Iterator[Batch]:
        step = rows_for(size, _product(header.shape[1:]))
        for start in range(0, header.shape[0], step):
            yield np.asarray(x[start : start + step]), None

    return header.shape[0], batches


def read_npz(path: str, predictor: Predictor, rows_for: Callable[[int, int], int]) -> tuple[int, Batches]:
    """(sequences, batches) of an `.npz` holding `x` and optional `lengths`."""
    with open(path, "rb") as handle:
        start = handle.read(4)
    try:
        if start != b"PK\x03\x04":  # zipfile skips leading bytes; numpy (and so training) refuses them
            raise zipfile.BadZipFile
        archive = zipfile.ZipFile(path)
        members = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, *DAMAGE):
        raise DataError(f"{path}: not an .npz archive") from None
    for name in ("x", "lengths"):
        if name in members and f"{name}.npy" not in members:
            raise DataError(f"{path}: member '{name}' is not a .npy array (write the file with np.savez)")
    if "x.npy" not in members:
        arrays = sorted(n.removesuffix(".npy") for n in members)
        raise DataError(f"{path}: no array 'x' (it has: {', '.join(arrays) or 'nothing'})")
    x_info = usable_member(path, members["x.npy"])
    header = member_header(path, archive, x_info)
    _check_x(path, header, x_info.file_size - header.offset)
    if header.fortran and len(header.shape) > 1:
        raise DataError(f"{path}: 'x' is stored in Fortran order; save it with np.savez(..., x=np.ascontiguousarray(x))")
    lengths = _lengths(path, archive, members, header, predictor) if "lengths.npy" in members else None

    def stream(rows_per_read: int) -> Iterator[np.ndarray]:
        with archive.open(x_info) as member:
            member.read(header.offset)
            for start in range(0, header.shape[0], rows_per_read):
                n = min(rows_per_read, header.shape[0] - start)
                data = member.read(n * header.row_bytes)
                if len(data) != n * header.row_bytes:
                    raise DataError(f"{path}: 'x' ends early (the archive changed or is truncated)")
                yield np.frombuffer(data, dtype=header.dtype).reshape(n, *header.shape[1:])

    def reads(rows_per_read: int) -> Iterator[np.ndarray]:
        try:
            yield from stream(rows_per_read)
        except DAMAGE as err:
            raise DataError(f"{path}: 'x' is damaged ({_reason(err)})") from None

    rows = max(1, CHECK_BYTES // max(1, header.row_bytes))
    chunks = ((start * rows, chunk) for start, chunk in enumerate(reads(rows)))
    _check_values(path, predictor, chunks, lengths_given=lengths is not None)

    def batches(size: int) -> Iterator[Batch]:
        start = 0
        for x in reads(rows_for(size, _product(header.shape[1:]))):
            yield x, None if lengths is None else lengths[start : start + len(x)]
            start += len(x)

    return header.shape[0], batches


# --- headers ----------------------------------------------------------------------------


def member_header(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Header:
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as member:
            return read_header(member, path, name)
    except DAMAGE as err:
        raise DataError(f"{path}: '{name}' is damaged ({_reason(err)})") from None


def usable_member(path: str, info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    name = info.filename.removesuffix(".npy")
    if info.flag_bits & 0x1:
        raise DataError(f"{path}: '{name}' is encrypted; rnnc reads only unencrypted archives (as np.savez writes)")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataError(f"{path}: '{name}' uses zip compression method {info.compress_type}; "
                        "save it with np.savez or np.savez_compressed (stored or deflated)")
    return info


def _check_x(path: str, header: Header, data_bytes: int) -> None:
    dtype, shape = header.dtype, header.shape
    if dtype.hasobject or dtype.kind not in "fiub" or dtype.shape:
        raise DataError(f"{path}: not a numeric .npy array ('x' holds {dtype} values, not numbers)")
    if len(shape) < 2:
        raise DataError(f"{path}: 'x' has shape {list(shape)}; it needs [sequences, time, ...]")
    check_size(path, "x", header, data_bytes)
    if shape[0] == 0:
        raise DataError(f"{path}: no sequences in 'x'")


def check_size(path: str, name: str, header: Header, data_bytes: int) -> None:
    claimed = _product(header.shape) * header.dtype.itemsize
    if claimed != data_bytes:
        raise DataError(
            f"{path}: '{name}' has a damaged header or is truncated: its shape {list(header.shape)} needs "
            f"{claimed:,} bytes of {header.dtype}, the file holds {data_bytes:,}"
        )


def _lengths(path: str, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], x: Header,
             predictor: Predictor) -> np.ndarray:
    info = usable_member(path, members["lengths.npy"])
    header = member_header(path, archive, info)
    if header.shape != (x.shape[0],) or header.dtype.kind not in "iu":
        raise DataError(f"{path}: 'lengths' has shape {list(header.shape)} of {header.dtype}; "
                        f"it needs {x.shape[0]} integers, one per sequence in 'x'")
    check_size(path, "lengths", header, info.file_size - header.offset)
    try:
        with archive.open(info) as member:
            member.read(header.offset)
            lengths = np.frombuffer(member.read(), dtype=header.dtype).astype(np.int64)
    except DAMAGE as err:
        raise DataError(f"{path}: 'lengths' is damaged ({_reason(err)})") from None
    steps = x.shape[1]
    outside = np.flatnonzero((lengths < 1) | (lengths > steps))
    if predictor.takes_lengths and outside.size:
        i = int(outside[0])
        raise DataError(f"{path}: lengths must lie in [1, {steps}] (the time axis of 'x'); lengths[{i}] is {lengths[i]}")
    return lengths


# --- values -----------------------------------------------------------------------------


def _chunks(read: Callable[[int, int], np.ndarray], header: Header) -> Iterator[tuple[int, np.ndarray]]:
    rows = max(1, CHECK_BYTES // max(1, header.row_bytes))
    for start in range(0, header.shape[0], rows):
        yield start, read(rows, start)


def _check_values(path: str, predictor: Predictor, chunks: Iterator[tuple[int, np.ndarray]], lengths_given: bool) -> None:
    """Every value once, before any output: the first bad one, with its position."""
    bad_count, first = 0, None
    for start, chunk in chunks:
        if predictor.lengths_from_ids and not lengths_given and chunk.ndim == 2 and chunk.shape[1]:
            if (empty := np.flatnonzero(~chunk.any(axis=1))).size:
                raise DataError(f"{path}: sequence {start + int(empty[0])} has no tokens (every id is 0, the padding id of mask_zero)")
        bad = _bad_values(chunk, predictor)
        if bad is None or not bad.any():
            continue
        bad_count += int(bad.sum())
        if first is None:
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            first = ((start + where[0], *where[1:]), chunk[where].item())
    if first is None:
        return
    where, value = first
    position = f"x{list(where)}"
    if predictor.token_ids:
        top = f"{predictor.vocab_size - 1}" if predictor.vocab_size else "..."
        raise DataError(f"{path}: x holds {bad_count} token ids outside [0, {top}] (first: {value} at {position})")
    what = "NaN" if np.isnan(value) else "inf" if np.isinf(value) else f"{value:g}, beyond float32"
    raise DataError(f"{path}: x holds {bad_count} NaN, inf or out-of-range values (first: {what} at {position})")


def _bad_values(chunk: np.ndarray, predictor: Predictor) -> np.ndarray | None:
    if predictor.token_ids:
        if chunk.dtype.kind not in "iu":
            return None  # Predictor.checked refuses the dtype on the first batch
        top = predictor.vocab_size if predictor.vocab_size is not None else np.iinfo(np.int64).max
        return (chunk < 0) | (chunk >= top)
    if chunk.dtype.kind != "f":
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        bad = ~np.isfinite(chunk)
        if chunk.dtype.itemsize > 4:
            bad |= np.abs(chunk) > FLOAT32_MAX
    return bad


def _memmap(path: str, header: Header) -> np.ndarray:
    if _product(header.shape) == 0:  # mmap cannot map nothing
        return np.zeros(header.shape, header.dtype)
    return np.memmap(path, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape,
                     order="F" if header.fortran else "C")
