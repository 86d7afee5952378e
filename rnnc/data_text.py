"""Raw text files (`.csv`, `.jsonl`) as token-id samples, as the spec's `data.text` says.

A `.csv` has a header naming its columns; a `.jsonl` holds one JSON object per line.
Each row gives a text (`data.text.column`) and a label (`data.text.label`; absent
or ignored for prediction, `labelled=False`). The
vocabulary is built from the training rows alone (after `validation_split` has taken
its share), so validation and test texts meet unknown tokens as new text will. Labels
of a classification loss are names: the classes are the distinct training labels in
`class_order` (by value when every label is an integer as written, "2" before "10";
otherwise as strings), and class `i` is output unit `i` (for binary cross-entropy with
one unit, the second name is class 1). Regression losses read labels as numbers.
Problems are one-line `DataError`s naming the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from . import ir
from .dataset import Dataset, TrainingData, check_readable, from_arrays, split_at
from .errors import DataError
from .text import Vocab

TEXT_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class TextRows:
    """The rows of one text file: texts, labels as written, and each row's line."""

    origin: str
    texts: list[str]
    labels: list[str]
    lines: list[int]

    def split(self, fraction: float) -> tuple[TextRows, TextRows]:
        """(first part, last `fraction`), as `Dataset.split`: no shuffling."""
        at = split_at(len(self.texts), fraction, self.origin)
        first = TextRows(self.origin, self.texts[:at], self.labels[:at], self.lines[:at])
        last = TextRows(f"{self.origin} (last {fraction:g})", self.texts[at:], self.labels[at:], self.lines[at:])
        return first, last


def read_rows(path: str | Path, settings: ir.TextData, *, labelled: bool = True) -> TextRows:
    """Every (text, label) row of a `.csv` or `.jsonl` file; a blank text is an error.
    `labelled=False` (prediction): the label column may be absent, and labels are ""."""
    path = Path(path)
    check_readable(path)
    if path.suffix not in TEXT_SUFFIXES:
        raise DataError(f"{path}: raw text comes in {' or '.join(TEXT_SUFFIXES)} files, got '{path.suffix}'")
    texts, labels, lines = [], [], []
    try:
        rows = list(_csv_rows(path, settings, labelled) if path.suffix == ".csv" else _jsonl_rows(path, settings, labelled))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except (OSError, csv.Error) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    for line, text, label in rows:
        if not text.strip():
            raise DataError(f"{path}:{line}: the text ('{settings.column}') is empty")
        texts.append(text)
        labels.append(label)
        lines.append(line)
    if not texts:
        raise DataError(f"{path}: holds no rows of text")
    return TextRows(str(path), texts, labels, lines)


def _csv_rows(path: Path, settings: ir.TextData, labelled: bool) -> Iterator[tuple[int, str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM is not in the first column's name
        reader = csv.reader(handle)
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise DataError(f"{path}: is empty (expected a header naming the columns, then one row per text)")
        names = [name.strip() for name in header]
        where = {}
        for role in ("column", "label") if labelled else ("column",):
            wanted = getattr(settings, role)
            if wanted not in names:
                raise DataError(f"{path}: data.text.{role} names column '{wanted}', but the file has: {', '.join(names)}")
            where[role] = names.index(wanted)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise DataError(f"{path}:{reader.line_num}: {len(row)} columns, the header has {len(names)}")
            yield reader.line_num, row[where["column"]], row[where["label"]].strip() if labelled else ""


def _jsonl_rows(path: Path, settings: ir.TextData, labelled: bool) -> Iterator[tuple[int, str, str]]:
    with path.open(encoding="utf-8-sig") as handle:  # a BOM would make the first record no JSON
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row: Any = json.loads(raw)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{line}: expected a JSON object per line, got {type(row).__name__}")
            for field in (settings.column, settings.label) if labelled else (settings.column,):
                if field not in row:
                    raise DataError(f"{path}:{line}: no field '{field}' (fields: {', '.join(row) or 'none'})")
            text, label = row[settings.column], row[settings.label] if labelled else ""
            if not isinstance(text, str):
                raise DataError(f"{path}:{line}: field '{settings.column}' must be a string, got {json.dumps(text)}")
            if isinstance(label, (dict, list)) or label is None:
                raise DataError(f"{path}:{line}: field '{settings.label}' must be a string or a number, got {json.dumps(label)}")
            yield line, text, label if isinstance(label, str) else json.dumps(label)


# --- rows to samples ------------------------------------------------------------------


def class_order(labels: Iterable[str]) -> tuple[str, ...]:
    """The distinct `labels` in class-id order: by integer value when every one is an
    integer written plainly (`-1`, `0`, `10`: what `str(int(x))` gives back, so not `07`,
    `+3` or `1_000`), else as strings. Integer labels are usually class ids already, and
    a user expects label 2 to be class 2's neighbour, not to follow "10"."""
    names = set(labels)
    if all(_plain_integer(name) for name in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def _plain_integer(label: str) -> bool:
    try:
        return str(int(label)) == label
    except ValueError:  # not an integer (or past Python's limit on digits)
        return False


def training_classes(model: ir.Model, rows: TextRows) -> tuple[str, ...] | None:
    """The class names (the training labels in `class_order`) a classification loss
    trains on, checked against the model's output; None for a regression loss."""
    if not model.loss.is_classification:
        return None
    classes = class_order(rows.labels)
    units = model.output_shape[-1]
    binary = model.loss.type == "binary_crossentropy"
    if binary and units != 1:
        raise DataError(
            f"{rows.origin}: text with one label per row takes binary_crossentropy over 1 unit, or "
            f"sparse_categorical_crossentropy; the model has {units} units"
        )
    wanted = 2 if binary else units
    if len(classes) != wanted:
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        fix = "set the last dense layer's units to match" if not binary else "binary_crossentropy needs exactly 2"
        raise DataError(
            f"{rows.origin}: the training labels name {len(classes)} classes ({shown}), "
            f"the model outputs {wanted}; {fix}"
        )
    return classes


def encode_rows(model: ir.Model, rows: TextRows, vocab: Vocab, classes: Sequence[str] | None) -> Dataset:
    """`rows` as a checked `Dataset`: ids padded to the input's timesteps (or to the
    longest text), lengths for variable-length models, labels in the loss's layout."""
    x, lengths = vocab.encode(rows.texts, model.input.shape[0])
    y = _labels(model, rows, classes)
    return from_arrays(model, x, y, lengths if model.variable_length else None, classes=classes, origin=rows.origin)


def _labels(model: ir.Model, rows: TextRows, classes: Sequence[str] | None) -> np.ndarray:
    if classes is None:
        values = np.empty(len(rows.labels), np.float32)
        for i, label in enumerate(rows.labels):
            try:
                values[i] = float(label)
            except ValueError:
                raise DataError(f"{rows.origin}:{rows.lines[i]}: label {label!r} is not a number ({model.loss.type} needs numbers)") from None
        return values
    ids = {name: i for i, name in enumerate(classes)}
    index = np.empty(len(rows.labels), np.int64)
    for i, label in enumerate(rows.labels):
        if label not in ids:
            shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
            raise DataError(f"{rows.origin}:{rows.lines[i]}: label {label!r} is not a class of the training data ({shown})")
        index[i] = ids[label]
    if model.loss.type == "categorical_crossentropy":
        return np.eye(len(classes), dtype=np.float32)[index]
    return index if model.loss.type == "sparse_categorical_crossentropy" else index.astype(np.float32)


class Splittable(Protocol):
    def split(self, fraction: float) -> tuple[Any, Any]: ...


Rows = TypeVar("Rows", bound=Splittable)  # TextRows, or a next-token model's Corpus


def read_splits(model: ir.Model, read: Callable[[str], Rows]) -> tuple[Rows, Rows | None, Rows | None]:
    """The spec's train, validation and test files, each read by `read`: validation is
    `data.validation`, else `validation_split`'s last share of train (its `split`)."""
    data = model.data
    assert data.train is not None
    train = read(data.train)
    validation = read(data.validation) if data.validation else None
    if validation is None and model.training.validation_split > 0:
        train, validation = train.split(model.training.validation_split)
    return train, validation, read(data.test) if data.test else None


def load_text_data(model: ir.Model) -> TrainingData:
    """The spec's train, validation and test text files, with the vocabulary built from
    the training rows."""
    settings = model.data.text
    assert settings is not None
    train, validation, test = read_splits(model, lambda path: read_rows(path, settings))
    vocab = Vocab.build(train.texts, settings)
    classes = training_classes(model, train)
    encode = lambda rows: None if rows is None else encode_rows(model, rows, vocab, classes)  # noqa: E731
    return TrainingData(encode(train), encode(validation), encode(test), vocab=vocab)
