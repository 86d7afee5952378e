"""What `rnnc check` reads of a spec's data files: their headers, never their arrays.

A `.npz` gives each member's shape and dtype from its `.npy` header (the zip directory
says where a member starts; a compressed member's header is the first bytes of its
stream, so only those are inflated); a `.csv` its header and first row; a `.jsonl` its
first record. Each problem is placed at the spec setting the file contradicts
(`input.shape`, `input.dtype`, the output layer's `units`, `loss`, `data.csv.targets[1]`,
`data.text.column`, `training.validation_split`, else `data.train` for the file itself)
and worded as training words it: the rules are `rnnc.data`'s shape-only checks, called
on the headers, so a rule is written once (a graph's, spec version 2: `rnnc.graph_layout`'s,
placed at the input or output an array belongs to). Values (NaN, class ids, token ids, lengths)
need the whole file and stay `rnnc train`'s to check. A first line longer than
`PEEK_BYTES` is not judged here at all. A next-token graph's raw text is the exception,
read whole (`rnnc.data_corpus`): the vocabulary it gives must fit the model.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from . import ir
from .data import (
    check_classes_layout,
    check_input_dtype,
    check_input_shape,
    check_lengths_layout,
    check_sample_counts,
    check_target_layout,
    split_at,
)
from .data_corpus import corpus_problems
from .data_csv import _columns, parse_table
from .data_parquet import is_parquet
from .errors import DataError, JsonPath, Problem
from .graph_layout import layout_problems
from .loader import Document
from .next_token import next_token_input
from .npy_header import Header, read_header
from .rows import is_npy_dir, read_npy_dir
from .parquet_peek import peek_headers

PEEK_BYTES = 1 << 16  # a header and a first row or record fit many times over
ROLES = ("train", "validation", "test")
_SIZE_SETTINGS = ("units", "filters", "dim")  # the setting that sizes a layer's last axis


def npz_headers(path: Path, origin: str) -> dict[str, Header]:
    """Every member of a `.npz`, by the name `numpy.load` gives it, as its header."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): _member_header(archive, info, origin) for info in archive.infolist()}
    except zipfile.BadZipFile:
        raise DataError(f"{origin}: not a valid .npz archive (no zip structure: truncated, corrupt or another format)") from None
    except (EOFError, zlib.error, ValueError, NotImplementedError, OSError) as err:
        raise DataError(f"{origin}: not a valid .npz archive, truncated or corrupt ({err})") from None
    return members


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, origin: str) -> Header:
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as member:
        if member.read(len(npy.MAGIC_PREFIX)) != npy.MAGIC_PREFIX:
            raise DataError(f"{origin}: '{name}' is not a numpy array (write the file with numpy.savez)")
        member.seek(0)
        header = read_header(member, origin, name)
    dtype = header.dtype
    if dtype.hasobject:
        raise DataError(f"{origin}: holds pickled or object arrays, which rnnc never loads")
    return header


def data_problems(model: ir.Model, doc: Document) -> list[Problem]:
    """Every problem the headers of the spec's data files show, placed in the spec."""
    written = doc.data.get("data") or {}
    problems: list[Problem] = []
    for role in ROLES:
        if (path := getattr(model.data, role)) is None:
            continue
        checks = _Checks(doc, ("data", role), str(written.get(role, path)))
        try:
            if model.data.text is not None and next_token_input(model) is not None:  # the text alone, read whole
                checks.problems += corpus_problems(model, checks.doc, Path(path), role, checks.origin)
            elif model.data.text is not None:
                _text(model, checks, Path(path))
            elif is_parquet(path):  # its footers, as the headers a padded .npz would have (rnnc.parquet_peek)
                headers = peek_headers(model, Path(path), checks.origin)
                (_graph_npz if model.graph is not None else _npz)(model, checks, Path(path), role, headers)
            elif is_npy_dir(path):  # a directory of .npy arrays: the same rules on their headers
                headers = {name: f.header for name, f in read_npy_dir(Path(path), checks.origin).items()}
                (_graph_npz if model.graph is not None else _npz)(model, checks, Path(path), role, headers)
            elif path.endswith(".npz") and model.graph is not None:
                _graph_npz(model, checks, Path(path), role)
            elif path.endswith(".npz"):
                _npz(model, checks, Path(path), role)
            elif path.endswith(".csv"):
                _series(model, checks, Path(path))
        except DataError as err:  # the file as a whole: empty, not an archive
            checks.problems.append(doc.problem(checks.file, str(err)))
        except OSError as err:
            checks.problems.append(doc.problem(checks.file, f"{checks.origin}: cannot read ({err.strerror or err})"))
        problems += checks.problems
    return problems


@dataclass
class _Checks:
    """One data file's checks: each `DataError` becomes a problem at its spec position."""

    doc: Document
    file: JsonPath  # ("data", role): where a problem of the file itself goes
    origin: str  # the path as the spec writes it, which every message starts with
    problems: list[Problem] = field(default_factory=list)

    def at(self, where: JsonPath, check: Callable[[], object]) -> None:
        try:
            check()
        except DataError as err:
            self.problems.append(self.doc.problem(where, str(err)))


def _npz(model: ir.Model, checks: _Checks, path: Path, role: str, arrays: dict[str, Header] | None = None) -> None:
    arrays = npz_headers(path, checks.origin) if arrays is None else arrays
    if missing := [name for name in ("x", "y") if name not in arrays]:
        have = ", ".join(sorted(arrays)) or "none"
        raise DataError(f"{checks.origin}: no array '{missing[0]}' (arrays: {have}); a .npz needs x, y and optionally lengths, classes")
    x, y, origin = arrays["x"], arrays["y"], checks.origin
    checks.at(("input", "shape"), lambda: check_input_shape(model, x.shape, origin))
    checks.at(("input", "dtype"), lambda: check_input_dtype(model, x.dtype, origin))
    if x.shape:
        checks.at(checks.file, lambda: check_sample_counts(x.shape, y.shape, origin))
    if y.shape and (len(x.shape) > 1 or not model.sequence_output):
        steps = x.shape[1] if len(x.shape) > 1 else 1  # only a sequence output reads it
        checks.at(_label_place(model, checks.doc, y.shape), lambda: check_target_layout(model, y.shape, y.dtype, steps, origin))
    if (lengths := arrays.get("lengths")) is not None and x.shape:
        checks.at(checks.file, lambda: check_lengths_layout(lengths.shape, lengths.dtype, x.shape[0], origin))
    if (classes := arrays.get("classes")) is not None:
        checks.at(checks.file, lambda: check_classes_layout(model, classes.shape, classes.dtype, origin))
    split = model.training.validation_split
    if role == "train" and split > 0 and model.data.validation is None and x.shape and x.shape[0] > 0:
        checks.at(("training", "validation_split"), lambda: split_at(x.shape[0], split, origin))


def _graph_npz(model: ir.Model, checks: _Checks, path: Path, role: str, arrays: dict[str, Header] | None = None) -> None:
    """A graph's arrays (spec version 2): `rnnc.graph_layout`'s rules on the headers,
    each problem at the input or output the array belongs to, else at the file."""
    arrays = npz_headers(path, checks.origin) if arrays is None else arrays
    for problem in layout_problems(model, {name: (h.shape, h.dtype) for name, h in arrays.items()}, checks.origin):
        checks.problems.append(checks.doc.problem(problem.where or checks.file, problem.message, key=len(problem.where) == 2))
    split = model.training.validation_split
    first = next((arrays[inp.name].shape for inp in model.inputs if inp.name in arrays), ())
    if role == "train" and split > 0 and model.data.validation is None and first and first[0] > 0:
        checks.at(("training", "validation_split"), lambda: split_at(first[0], split, checks.origin))


def _label_place(model: ir.Model, doc: Document, shape: tuple[int, ...]) -> JsonPath:
    """Labels with a units axis of another size, or without one (which fits one unit),
    are the output layer's to fit; any other misfit (class ids for a one-hot loss,
    one-hot for class ids) is the loss's."""
    units_axis, loss = len(model.output_shape), model.loss.type  # y's rank with a units axis
    resized = len(shape) == units_axis and shape[-1] != model.output_shape[-1]
    unsized = len(shape) == units_axis - 1 and model.output_shape[-1] != 1 and loss != "categorical_crossentropy"
    if loss != "sparse_categorical_crossentropy" and (resized or unsized) and (layer := _output_layer(model)):
        return layer
    return ("loss",) if isinstance(doc.data.get("loss"), str) else ("loss", "type")


def _output_layer(model: ir.Model) -> JsonPath | None:
    """The setting that sizes the model's output: the last layer with units, filters or dim."""
    for node in reversed(model.nodes):
        for setting in _SIZE_SETTINGS:
            if hasattr(node.layer, setting):
                return ("layers", node.index, setting)
    return None


def head_text(path: Path, origin: str) -> str | None:
    """The complete lines in the file's first `PEEK_BYTES`; None when not even one fits."""
    with path.open("rb") as handle:
        raw = handle.read(PEEK_BYTES + 1)
    if len(raw) > PEEK_BYTES:
        cut = raw.rfind(b"\n", 0, PEEK_BYTES)
        if cut < 0:
            return None
        raw = raw[: cut + 1]  # a cut line is no line
    try:
        return raw.decode("utf-8-sig")  # a BOM, as the readers of the whole file drop it
    except UnicodeDecodeError:
        raise DataError(f"{origin}: not a UTF-8 text file") from None


def _head_rows(text: str, origin: str) -> list[list[str]]:
    """The first two non-blank csv rows: a header and a first row."""
    try:
        rows = (row for row in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in row))
        return list(itertools.islice(rows, 2))
    except csv.Error as err:
        raise DataError(f"{origin}: cannot read csv ({err})") from None


def _series(model: ir.Model, checks: _Checks, path: Path) -> None:
    """A time series: the columns data.csv names exist, the first row holds numbers."""
    windows = model.data.csv
    assert windows is not None  # validate's csv_windows_fit_input
    if (text := head_text(path, checks.origin)) is None:
        return
    rows, origin = _head_rows(text, checks.origin), checks.origin
    if not rows:
        parse_table(Path(origin), rows)  # says what an empty series file should hold
    header = [name.strip() for name in rows[0]]
    for role in ("features", "targets"):
        for i, name in enumerate(getattr(windows, role) or ()):
            checks.at(("data", "csv", role, i), lambda: _columns(Path(origin), header, (name,), role))  # noqa: B023 - called at once
    features = model.input.shape[-1]
    if windows.features is None and len(header) != features:
        checks.problems.append(checks.doc.problem(("data", "csv"), (
            f"{checks.origin}: without data.csv.features every column is a feature, and the file has "
            f"{len(header)} ({', '.join(header)}); input.shape[1] is {features}"), key=True))
    used = None if windows.features is None else (*windows.features, *windows.targets)
    checks.at(checks.file, lambda: parse_table(Path(origin), rows, used))


def _text(model: ir.Model, checks: _Checks, path: Path) -> None:
    """Raw text: the text and label columns (csv) or fields (first jsonl record) exist."""
    settings = model.data.text
    assert settings is not None
    wanted = {"column": settings.column, "label": settings.label}
    if (text := head_text(path, checks.origin)) is None:
        return
    if path.suffix == ".csv":
        rows = _head_rows(text, checks.origin)
        if not rows:
            raise DataError(f"{checks.origin}: is empty (expected a header naming the columns, then one row per text)")
        names = [name.strip() for name in rows[0]]
        for role, name in wanted.items():
            if name not in names:
                checks.problems.append(checks.doc.problem(
                    ("data", "text", role), f"{checks.origin}: data.text.{role} names column '{name}', but the file has: {', '.join(names)}"))
        return
    first = next(((n, raw) for n, raw in enumerate(io.StringIO(text, newline=None), start=1) if raw.strip()), None)
    if first is None:
        raise DataError(f"{checks.origin}: holds no rows of text")
    line, raw = first
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(f"{checks.origin}:{line}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise DataError(f"{checks.origin}:{line}: expected a JSON object per line, got {type(record).__name__}")
    for role, name in wanted.items():
        if name not in record:
            checks.problems.append(checks.doc.problem(
                ("data", "text", role), f"{checks.origin}:{line}: no field '{name}' (fields: {', '.join(record) or 'none'})"))
