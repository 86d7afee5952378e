"""A large uncompressed `.npz` trains from its rows in place, never loaded whole.

`rnnc.data.load_training_data` opens a chain's `np.savez` archive above
`ROWS_ABOVE` bytes as a `RowsDataset` (`rnnc.rows.stored_npz` finds each member's
offset); its rows must be the archive's arrays, the weights those of the arrays in
memory, and a compressed or damaged archive still a clear error or loaded whole.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnc.data
from rnnc.data import load_training_data
from rnnc.dataset import Dataset
from rnnc.errors import DataError
from rnnc.rows import NpyDirRows, stored_npz
from rnnc.rows_dataset import RowsDataset
from rnnc.spec import load_model
from rnnc_torch.trainer import Trainer
from test_npy_dir import ragged, spec


def test_rows_are_the_archive_arrays(tmp_path: Path) -> None:
    data = ragged(n=30)
    path = tmp_path / "train.npz"
    np.savez(path, x=data["x"], y=data["y"], lengths=data["lengths"], classes=np.array(["no", "yes"]))
    files = stored_npz(path, str(path))
    assert files is not None and sorted(files) == ["classes", "lengths", "x", "y"]
    rows = NpyDirRows(path, {"x": "lengths"}, files=files)
    index = np.array([7, 0, 29, 7, 12])
    got = rows.take(index)
    steps = int(data["lengths"][index].max())
    np.testing.assert_array_equal(got["x"], data["x"][index, :steps])
    np.testing.assert_array_equal(got["y"], data["y"][index])
    np.testing.assert_array_equal(got["lengths"], data["lengths"][index])
    assert rows.constants["classes"].tolist() == ["no", "yes"]
    rows.close()


def test_compressed_or_foreign_archives_are_not_read_in_place(tmp_path: Path) -> None:
    data = ragged(n=10)
    np.savez_compressed(tmp_path / "small.npz", x=data["x"], y=data["y"])
    assert stored_npz(tmp_path / "small.npz", "small.npz") is None
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as archive:
        archive.writestr("notes.txt", "not an array")
    assert stored_npz(tmp_path / "other.npz", "other.npz") is None


@pytest.fixture
def in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rnnc.data, "ROWS_ABOVE", 0)


def weights(model_path: Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    model = load_model(model_path)
    files = load_training_data(model)
    torch.set_num_threads(1)
    trainer = Trainer(model)
    trainer.run(files.train, files.validation, progress=False)
    return trainer.module.state_dict(), trainer.history


def test_same_weights_as_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ragged()
    np.savez(tmp_path / "train.npz", x=data["x"], y=data["y"], lengths=data["lengths"])
    model_path = spec(tmp_path, "train.npz")
    memory, memory_history = weights(model_path)
    assert isinstance(load_training_data(load_model(model_path)).train, Dataset)
    monkeypatch.setattr(rnnc.data, "ROWS_ABOVE", 0)
    files = load_training_data(load_model(model_path))
    assert isinstance(files.train, RowsDataset) and isinstance(files.validation, RowsDataset)
    assert (len(files.train), len(files.validation)) == (30, 10)
    disk, disk_history = weights(model_path)
    assert memory.keys() == disk.keys()
    for name in memory:
        assert torch.equal(memory[name], disk[name]), name
    assert [h["loss"] for h in memory_history] == [h["loss"] for h in disk_history]
    assert [h["val_accuracy"] for h in memory_history] == [h["val_accuracy"] for h in disk_history]


def test_damaged_member_names_the_archive(tmp_path: Path, in_place: None) -> None:
    data = ragged(n=10)
    path = tmp_path / "train.npz"
    header = tmp_path / "x.npy"
    np.save(header, data["x"])
    with zipfile.ZipFile(path, "w") as archive:  # x's header promises 10 rows, the member holds 9
        archive.writestr("x.npy", header.read_bytes()[: -data["x"][0].nbytes])
        archive.writestr("y.npy", _npy(tmp_path, data["y"]))
    with pytest.raises(DataError, match=r"train\.npz: 'x': truncated: its header says \[10, 7, 3\] float32"):
        load_training_data(load_model(spec(tmp_path, "train.npz")))


def test_bad_values_name_the_archive(tmp_path: Path, in_place: None) -> None:
    data = ragged(n=10)
    data["x"][4, 0, 1] = np.nan
    np.savez(tmp_path / "train.npz", x=data["x"], y=data["y"], lengths=data["lengths"])
    with pytest.raises(DataError, match=r"train\.npz: x holds 1 NaN or inf values"):
        load_training_data(load_model(spec(tmp_path, "train.npz")))


def _npy(folder: Path, array: np.ndarray) -> bytes:
    path = folder / "part.npy"
    np.save(path, array)
    return path.read_bytes()
