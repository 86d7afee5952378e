"""The `.npz` input of `rnnc predict` for a v2 graph, read in bounded memory, checked whole first.

A graph's `.npz` holds one array per input, named after it, and `<input>_lengths` for
an input that takes lengths (left out: filled by the input's rule, as the runtime
does). Arrays named after the outputs (`<output>`, `<output>_classes`: a training
file's targets) are ignored; any other array, and every missing input, is an error
naming it, all of them at once. Each array's header is checked as `predict_arrays`
checks `x` (numeric, a size the member really holds, C order), then its dtype and shape
against the input (`GraphInput.problem`), and the sample counts against each other.
Then one pass over every batch runs the runtime's own checks (NaN, ids, lengths) without
running the model, and reads each member to its end so zipfile verifies its CRC: a bad
value or a flipped byte is found before any output is written. The second pass streams
the batches again for the model. Decoding a generative model (`predict_decode`) reads
the same file without its feedback input: `ignored` names arrays passed over.
"""

from __future__ import annotations

import contextlib
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from rnnc.cli.predict_arrays import DAMAGE, check_size, member_header, usable_member
from rnnc.cli.predict_io import rows_for
from rnnc.errors import DataError, did_you_mean
from rnnc.ir import CLASSIFICATION_LOSSES
from rnnc.npy_header import Header
from rnnc.npy_header import product as _product
from rnnc.npy_header import reason as _reason
from rnnc.runtime_graph import GraphPredictor, InputErrors

Arrays = dict[str, np.ndarray]
GraphBatch = tuple[Arrays, Arrays]  # (inputs, lengths given), each keyed by input name


@dataclass(frozen=True)
class GraphSource:
    """A graph's input file: how many samples, and `batches(size)` to read them."""

    path: str
    count: int
    batches: Callable[[int], Iterator[GraphBatch]] = field(repr=False)


def open_graph_npz(path: str, predictor: GraphPredictor, ignored: tuple[str, ...] = ()) -> GraphSource:
    """The `.npz` at `path`, every array's header checked against `predictor`'s inputs
    and every value by the runtime's checks; a `DataError` with one line per problem.
    `predictor` is anything with `inputs`, `outputs` and `checked` as a `GraphPredictor`
    has them (a decoder's questions); arrays named in `ignored` are passed over."""
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    if suffix != ".npz":
        raise DataError(f"{path}: a graph model reads a .npz input, one array per input ({', '.join(predictor.inputs)}); "
                        f"got '{suffix or path}'")
    try:
        if os.path.isdir(path):
            raise DataError(f"{path}: is a directory, not an input file")
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DataError(f"{path}: not a regular file; .npz input is read twice, so save it to a file first")
        with open(path, "rb") as handle:
            start = handle.read(4)
        source = _opened(path, predictor, start, ignored)
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None
    _check_values(source, predictor)
    return source


def _opened(path: str, predictor: GraphPredictor, start: bytes, ignored: tuple[str, ...]) -> GraphSource:
    try:
        if start != b"PK\x03\x04":  # zipfile skips leading bytes; numpy (and so training) refuses them
            raise zipfile.BadZipFile
        archive = zipfile.ZipFile(path)
        members = {info.filename: info for info in archive.infolist()}
    except DAMAGE:
        raise DataError(f"{path}: not an .npz archive") from None
    wanted = _wanted(predictor, ignored)
    if odd := [n for n in members if not n.endswith(".npy") and n in wanted]:
        raise DataError(f"{path}: member '{odd[0]}' is not a .npy array (write the file with np.savez)")
    names = {n.removesuffix(".npy"): info for n, info in members.items()}
    problems = _name_problems(path, predictor, wanted, list(names))
    headers: dict[str, tuple[zipfile.ZipInfo, Header]] = {}
    for name in (n for n in wanted if n in names and wanted[n] != "target"):
        try:
            headers[name] = _header(path, archive, usable_member(path, names[name]), name)
        except DataError as err:
            problems.append(str(err))
    problems += _layout_problems(path, predictor, {n: h for n, (_, h) in headers.items()})
    if problems:
        raise InputErrors(problems)
    count = headers[next(iter(predictor.inputs))][1].shape[0]
    given = {inp: _lengths(path, archive, *headers[f"{inp}_lengths"]) for inp in predictor.inputs if f"{inp}_lengths" in headers}
    inputs = {name: headers[name] for name in predictor.inputs}
    row_values = sum(_product(h.shape[1:]) for _, h in inputs.values())

    def batches(size: int) -> Iterator[GraphBatch]:
        rows = rows_for(size, row_values)
        with contextlib.ExitStack() as stack:
            streams = {name: _rows(path, stack.enter_context(archive.open(info)), name, header, rows)
                       for name, (info, header) in inputs.items()}
            for begin in range(0, count, rows):
                batch = {name: _next(path, name, stream) for name, stream in streams.items()}
                yield batch, {name: lengths[begin : begin + rows] for name, lengths in given.items()}
            for name, stream in streams.items():
                with contextlib.suppress(StopIteration):
                    _next(path, name, stream)  # to the member's end: zipfile checks its CRC there

    return GraphSource(path, count, batches)


def _wanted(predictor: GraphPredictor, ignored: tuple[str, ...] = ()) -> dict[str, str]:
    """Every array name the file may hold, with its role: input, lengths, or target
    (an output's, or one `ignored`: passed over)."""
    roles = {name: "input" for name in predictor.inputs}
    roles.update({name: "target" for name in ignored})
    roles.update({f"{name}_lengths": "lengths" for name, inp in predictor.inputs.items() if inp.takes_lengths})
    for name, out in predictor.outputs.items():
        roles.setdefault(name, "target")
        if out.loss in CLASSIFICATION_LOSSES:
            roles.setdefault(f"{name}_classes", "target")
    return roles


def _name_problems(path: str, predictor: GraphPredictor, wanted: dict[str, str], names: list[str]) -> list[str]:
    have = ", ".join(sorted(names)) or "none"
    problems = [f"{path}: no array '{n}' (input '{n}' {inp.layout()}); arrays: {have}"
                for n, inp in predictor.inputs.items() if n not in names]
    reads = [n for n, role in wanted.items() if role != "target"]
    for name in sorted(set(names) - set(wanted)):
        problems.append(f"{path}: unexpected array '{name}'{did_you_mean(name, reads)}; the model reads: {', '.join(reads)} "
                        f"(and ignores its outputs' targets: {', '.join(n for n, r in wanted.items() if r == 'target')})")
    return problems


def _header(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> tuple[zipfile.ZipInfo, Header]:
    header = member_header(path, archive, info)
    if header.dtype.hasobject or header.dtype.kind not in "fiub" or header.dtype.shape:
        raise DataError(f"{path}: '{name}' holds {header.dtype} values, not numbers")
    check_size(path, name, header, info.file_size - header.offset)
    if header.fortran and len(header.shape) > 1:
        raise DataError(f"{path}: '{name}' is stored in Fortran order; save it with np.savez(..., {name}=np.ascontiguousarray(...))")
    return info, header


def _layout_problems(path: str, predictor: GraphPredictor, headers: dict[str, Header]) -> list[str]:
    problems = []
    for name, inp in predictor.inputs.items():
        if name in headers and (problem := inp.problem(headers[name].shape, headers[name].dtype)):
            problems.append(f"{path}: {problem}")
        lengths = headers.get(f"{name}_lengths")
        if lengths is not None and (len(lengths.shape) != 1 or lengths.dtype.kind not in "iu"):
            problems.append(f"{path}: '{name}_lengths' has {lengths.dtype} {list(lengths.shape)}; "
                            "it needs one integer per sample [N]")
    rows = [(name, h.shape[0]) for name, h in headers.items() if h.shape]
    if rows and not problems:
        first, count = rows[0]
        problems += [f"{path}: '{name}' has {n} samples but '{first}' has {count}" for name, n in rows[1:] if n != count]
        if count == 0 and not problems:
            problems.append(f"{path}: no samples ('{first}' has 0 rows)")
    return problems


def _lengths(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: Header) -> np.ndarray:
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as member:
            member.read(header.offset)
            return np.frombuffer(member.read(), dtype=header.dtype).astype(np.int64)
    except DAMAGE as err:
        raise DataError(f"{path}: '{name}' is damaged ({_reason(err)})") from None


def _rows(path: str, member: zipfile.ZipExtFile, name: str, header: Header, rows: int) -> Iterator[np.ndarray]:
    """`rows` rows of the member at a time, then a last read to its end."""
    member.read(header.offset)
    count = header.shape[0]
    for begin in range(0, count, rows):
        n = min(rows, count - begin)
        data = member.read(n * header.row_bytes)
        if len(data) != n * header.row_bytes:
            raise DataError(f"{path}: '{name}' ends early (the archive changed or is truncated)")
        yield np.frombuffer(data, dtype=header.dtype).reshape(n, *header.shape[1:])
    if member.read(1):
        raise DataError(f"{path}: '{name}' holds more than its header says (the archive changed)")


def _next(path: str, name: str, stream: Iterator[np.ndarray]) -> np.ndarray:
    try:
        return next(stream)
    except DAMAGE as err:
        raise DataError(f"{path}: '{name}' is damaged ({_reason(err)})") from None


def _check_values(source: GraphSource, predictor: GraphPredictor) -> None:
    """Every batch through the runtime's checks, before any output: the first bad one,
    placed in the whole file."""
    begin = 0
    for inputs, lengths in source.batches(1 << 30):
        try:
            predictor.checked(inputs, lengths, start=begin)
        except DataError as err:
            raise InputErrors([f"{source.path}: {line}" for line in err.lines()]) from None
        begin += len(next(iter(inputs.values())))
