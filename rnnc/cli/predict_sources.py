"""The input of `rnnc predict`, read as `rnnc train` reads it when the spec says how.

A `.csv` is a time series under the spec's `data.csv` (every full window is a sample;
the targets lie ahead) or raw text under its `data.text` (as a `.jsonl` is); labels and
targets in the file are ignored. The spec is the run directory's `spec.yaml`, the one
beside the model, or `--spec`; without one a `.csv` is one flattened sequence per row,
and that and every other format (`.npz`, `.npy`, `.txt`) is `predict_io`'s. Each input
comes with its keys, the columns that name each row in the output: its text, or a
series' other columns (a date) at the window's last row. Raw text is padded to its
longest text when the model's output is per step, so every batch has one time axis.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnc import ir
from rnnc.cli.predict_io import Batch, Source, open_input
from rnnc.errors import DataError
from rnnc.runtime import Predictor

SPEC_HINT = "pass the run directory or --spec"
CSV_HINT = f"a series .csv needs the spec's data.csv settings, a raw-text .csv its data.text: {SPEC_HINT}"


@dataclass(frozen=True)
class Keys:
    """Columns that name each input row in the output: `names`, and one tuple of cells per row."""

    names: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True)
class Input:
    source: Source
    keys: Keys | None = None


def suffix_of(path: str) -> str:
    return path[path.rfind(".") :].lower() if "." in path else ""


def needs_spec(path: str, regression: bool) -> bool:
    """Whether the spec matters: to read a `.csv`/`.jsonl`, or to name a regression's
    targets (compiling a spec costs some 60 ms of a cold start, so it is read only then)."""
    return suffix_of(path) in (".csv", ".jsonl") or regression


def read_spec(spec_path: Path, input_path: str) -> tuple[ir.Model, tuple[str, ...] | None]:
    """(the spec's IR, its data.csv target names) with `input_path` as its only data file
    where the spec's settings read it, and no training settings (they may name files or
    monitors that predicting has no use for)."""
    from rnnc.loader import load_file
    from rnnc.spec import compile_document

    doc = load_file(spec_path)
    declared = None
    suffix = suffix_of(input_path)
    if isinstance(doc.data, dict):
        section = doc.data.get("data")
        kept = {k: v for k, v in section.items() if k not in ("train", "validation", "test")} if isinstance(section, dict) else {}
        declared = _declared_targets(kept.get("csv"))
        if suffix == ".jsonl" and "text" not in kept:
            raise DataError(f"{input_path}: a .jsonl input holds raw text, but {spec_path} has no data.text to say which field")
        if suffix == ".csv" and ("csv" in kept or "text" in kept) or suffix == ".jsonl":
            if not Path(input_path).is_file():
                raise DataError(f"{input_path}: no such file")
            kept["test"] = str(Path(input_path).resolve())
        else:
            kept.pop("csv", None)  # its check wants a .csv data file, and the input is none
        doc.data["data"] = kept
        doc.data.pop("training", None)
    model = compile_document(doc, spec_path.resolve().parent)
    if model.data.csv is None:
        return model, declared
    from rnnc.data_csv import target_names

    return model, target_names(model.data.csv)


def _declared_targets(windows: Any) -> tuple[str, ...] | None:
    """data.csv.targets as the spec writes them, for naming outputs when the input is not
    the series itself (and the csv section is left out of the compiled spec)."""
    targets = windows.get("targets") if isinstance(windows, dict) else None
    if isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
        horizon = windows.get("horizon", 1)
        if windows.get("all_steps") is True and isinstance(horizon, int) and horizon >= 1:
            return tuple(f"{t}+{k}" for k in range(1, horizon + 1) for t in targets)  # as data_csv.target_names
        return tuple(targets)
    return None


def open_source(path: str, predictor: Predictor, model: ir.Model | None, *, header: bool | None = None) -> Input:
    suffix = suffix_of(path)
    data = model.data if model is not None else None
    if data is not None and data.csv is not None and suffix == ".csv":
        return _series(path, data.csv)
    if data is not None and data.text is not None and suffix in (".csv", ".jsonl"):
        from rnnc.data_text import read_rows

        rows = read_rows(path, data.text, labelled=False)
        return text_input(path, rows.texts, predictor, data.text.column)
    from rnnc.cli.predict_disk import is_on_disk, open_disk

    if is_on_disk(path):  # a directory of .npy files, Parquet
        return Input(open_disk(path, predictor))
    if suffix == ".jsonl":
        raise DataError(f"{path}: a .jsonl input holds raw text, read with the spec's data.text (which field holds it): {SPEC_HINT}")
    try:
        source = open_input(path, predictor, header=header)
    except DataError as err:
        if suffix == ".csv" and model is None:
            raise DataError(f"{err} ({CSV_HINT})") from None
        raise
    if source.texts is not None:
        return text_input(path, source.texts, predictor, "text")
    return Input(source)


def _series(path: str, windows: ir.CsvWindows) -> Input:
    from rnnc.data_csv import read_series

    x, names, cells = read_series(Path(path), windows)

    def batches(size: int) -> Iterator[Batch]:
        for start in range(0, len(x), size):
            yield x[start : start + size], None

    return Input(Source(path, len(x), batches), Keys(names, cells) if names else None)


def text_input(path: str, texts: list[str], predictor: Predictor, column: str) -> Input:
    """Raw texts, tokenised with the vocabulary in the model, keyed by `column`."""
    vocab = predictor.vocab
    if vocab is None:
        raise DataError(f"{path}: holds raw text, but {predictor.path} was not trained on text (no vocabulary in it)")
    per_step = len(predictor.session.get_outputs()[0].shape) == 3
    steps = predictor.timesteps or ((max(len(vocab.ids(t)) for t in texts) or 1) if per_step else None)

    def batches(size: int) -> Iterator[Batch]:
        for start in range(0, len(texts), size):
            ids, lengths = vocab.encode(texts[start : start + size], steps)
            yield ids, lengths if predictor.takes_lengths else None

    return Input(Source(path, len(texts), batches, texts), Keys((column,), [(t,) for t in texts]))

