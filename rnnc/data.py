"""Training data files: which reader a file needs, and the spec's data sets.

`load_file` picks the reader by the spec and the file: a graph's `.npz` (spec version
2) goes to `rnnc.graph_data`, a next-token graph's raw text to `rnnc.data_corpus`; raw text (`data.text`) to `rnnc.data_text`, a `.csv` time
series (`data.csv`) to `rnnc.data_csv`, a v1 `.npz` is read here; each v1 reader ends
in `rnnc.dataset.from_arrays`, which checks the arrays against the IR (every problem
a one-line `DataError` naming the file). `load_training_data` loads the train,
validation and test sets, all checked before any is used. The types and checks
live in `rnnc.dataset` so the readers can import them without importing this
dispatcher; they are re-exported here, where callers have always imported them
(`from rnnc.data import Dataset, from_arrays, load_file`). Needs numpy only.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import ir
from .data_corpus import load_corpus_data, load_corpus_file
from .data_csv import read_windows
from .data_parquet import is_parquet
from .data_text import encode_rows, load_text_data, read_rows
from .dataset import (
    Dataset,
    TrainingData,
    check_classes_layout,
    check_input_dtype,
    check_input_shape,
    check_lengths_layout,
    check_readable,
    check_sample_counts,
    check_target_layout,
    from_arrays,
    output_steps,
    show,
    split_at,
)
from .errors import DataError
from .graph_data import graph_dataset
from .npz_spill import npz_bytes
from .parquet_rows import parquet_rows
from .rows import is_npy_dir
from .rows_dataset import RowsDataset, npy_dir_dataset, npz_rows_dataset, rows_dataset
from .text import Vocab

__all__ = [
    "Dataset",
    "TrainingData",
    "check_classes_layout",
    "check_input_dtype",
    "check_input_shape",
    "check_lengths_layout",
    "check_readable",
    "check_sample_counts",
    "check_target_layout",
    "from_arrays",
    "load_file",
    "load_training_data",
    "output_steps",
    "read_npz",
    "show",
    "split_at",
]


def load_training_data(model: ir.Model) -> TrainingData:
    """The spec's train, validation and test sets, all checked before any is used."""
    if model.data.train is None:
        raise DataError(f"{model.name}: the spec names no training data (set data.train)")
    if model.data.text is not None:
        return load_corpus_data(model) if model.graph is not None else load_text_data(model)
    train = _training_file(model, model.data.train)
    validation = _training_file(model, model.data.validation) if model.data.validation else None
    if validation is None and model.training.validation_split > 0:
        train, validation = train.split(model.training.validation_split)
    test = _training_file(model, model.data.test) if model.data.test else None
    return TrainingData(train, validation, test)  # type: ignore[arg-type]


ROWS_ABOVE = 64 << 20  # bytes of arrays: a larger .npz or Parquet data set trains from disk, a batch of rows at a time


def _training_file(model: ir.Model, path: str | Path) -> Dataset | RowsDataset:
    """`load_file`, except that a `.npz` holding more than `ROWS_ABOVE` bytes of arrays
    stays on disk, read a batch of rows at a time (as a `.npy` directory is): in place
    when stored (`np.savez`), from the data cache once inflated when compressed
    (`rnnc.npz_spill`); a Parquet data set above it is decoded once into the data cache
    (`rnnc.parquet_spill`). Training then holds none of its arrays whole, and takes the
    same steps as from the arrays in memory. A smaller set costs less memory whole
    than one checked chunk."""
    path = Path(path)
    if is_parquet(path):
        return rows_dataset(model, parquet_rows(model, path, spill_above=ROWS_ABOVE))
    if path.suffix == ".npz" and path.is_file() and npz_bytes(path) > ROWS_ABOVE:
        if (rows := npz_rows_dataset(model, path)) is not None:
            return rows
    return load_file(model, path)


def load_file(
    model: ir.Model, path: str | Path, *, vocab: Vocab | None = None, classes: Sequence[str] | None = None
) -> Dataset:
    """One data file (`.npz`, `.csv` windowed by the spec's `data.csv`, or raw text per
    `data.text`) as a `Dataset`. Raw text needs the training data's `vocab` and, for a
    classification loss, its `classes` (a run directory keeps both)."""
    path = Path(path)
    if is_parquet(path):  # a .parquet file or a directory of them (rnnc.data_parquet): batches padded as taken
        return rows_dataset(model, parquet_rows(model, path))  # type: ignore[return-value]
    if is_npy_dir(path):  # a directory of .npy arrays, read by row, never whole (rnnc.rows_dataset)
        return npy_dir_dataset(model, path)  # type: ignore[return-value]
    check_readable(path)
    if model.graph is not None:  # spec version 2: a GraphDataset, its arrays by name
        if model.data.text is not None and path.suffix != ".npz":  # a next-token model's raw text
            if vocab is None:
                raise DataError(f"{path}: raw text needs the vocabulary of the training data (a run directory has it)")
            return load_corpus_file(model, path, vocab)  # type: ignore[return-value]
        if path.suffix != ".npz":
            raise DataError(f"{path}: a graph reads .npz files (one array per input and output), got {path.name}")
        return graph_dataset(model, read_npz(path), str(path))  # type: ignore[return-value]
    if model.data.text is not None:
        if vocab is None or (classes is None and model.loss.is_classification):
            raise DataError(f"{path}: raw text needs the vocabulary and class names of the training data (a run directory has them)")
        return encode_rows(model, read_rows(path, model.data.text), vocab, classes)
    if path.suffix == ".npz":
        arrays = read_npz(path)
        for name in ("x", "y"):
            if name not in arrays:
                have = ", ".join(sorted(arrays)) or "none"
                raise DataError(f"{path}: no array '{name}' (arrays: {have}); a .npz needs x, y and optionally lengths, classes")
        classes = arrays.get("classes")
        return from_arrays(model, arrays["x"], arrays["y"], arrays.get("lengths"), classes=classes, origin=str(path))
    if path.suffix == ".csv":
        if model.data.csv is None:
            raise DataError(f"{path}: a .csv file needs data.csv (targets, window) in the spec")
        x, y = read_windows(path, model.data.csv)
        return from_arrays(model, x, y, origin=str(path))
    raise DataError(f"{path}: unsupported data file type '{path.suffix}' (expected .npz or .csv)")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array in a `.npz`, read eagerly, without pickle."""
    with path.open("rb") as handle:
        if not zipfile.is_zipfile(handle):
            raise DataError(f"{path}: not a valid .npz archive (no zip structure: truncated, corrupt or another format)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as err:
        if "pickle" in str(err).lower() or "object arrays" in str(err).lower():
            raise DataError(f"{path}: holds pickled or object arrays, which rnnc never loads") from None
        raise DataError(f"{path}: not a valid .npz archive ({err})") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, KeyError, OSError) as err:
        raise DataError(f"{path}: not a valid .npz archive, truncated or corrupt ({err})") from None
    # numpy hands back the raw bytes of a member that is not a .npy array
    if raw := sorted(name for name, value in arrays.items() if not isinstance(value, np.ndarray)):
        raise DataError(f"{path}: '{raw[0]}' is not a numpy array (write the file with numpy.savez)")
    return arrays
