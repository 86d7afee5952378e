"""A compressed `.npz` above `ROWS_ABOVE` is inflated once into the data cache and trains from there.

`rnnc.npz_spill` inflates each member a piece at a time into `RNNC_DATA_CACHE`; the
archive then trains as a `.npy` directory does, to the weights and logs of the arrays
loaded whole, for a chain and a graph (a graph's stored `.npz` now reads in place too).
The next run reuses the cache; a member that does not inflate is one line naming the
archive and the member, exit status 2.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import rnnc.data
import rnnc.npz_spill
from rnnc.cli import main
from rnnc.data import load_training_data
from rnnc.rows_dataset import RowsDataset
from rnnc.spec import load_model
from test_npy_dir import ragged, same, spec
from test_parquet_spill import GRAPH, run


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RNNC_DATA_CACHE", str(folder))
    monkeypatch.setattr(rnnc.npz_spill, "PIECE", 100)  # many pieces per member
    return folder


def test_chain_inflated_trains_as_loaded_whole(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ragged(n=40, seed=4)
    np.savez_compressed(tmp_path / "train.npz", x=data["x"], y=data["y"], lengths=data["lengths"], classes=np.array(["no", "yes"]))
    path = spec(tmp_path, "train.npz")
    want, want_logs = run(path, tmp_path / "memory")
    assert not cache.exists()
    monkeypatch.setattr(rnnc.data, "ROWS_ABOVE", 0)
    got, got_logs = run(path, tmp_path / "disk")
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert sorted(p.name for p in folder.glob("*.npy")) == ["m0.npy", "m1.npy", "m2.npy", "m3.npy"]
    np.testing.assert_array_equal(np.load(folder / "m0.npy"), data["x"])
    same(want, got)
    assert got_logs == want_logs

    def no_inflating(*args: Any) -> Any:
        raise AssertionError("inflated again")

    monkeypatch.setattr(rnnc.npz_spill, "_write", no_inflating)
    files = load_training_data(load_model(path))  # the cache reused
    assert isinstance(files.train, RowsDataset) and files.train.classes == ("no", "yes")


@pytest.mark.parametrize("save", [np.savez_compressed, np.savez])
def test_graph_npz_from_disk_trains_as_loaded_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save: Any) -> None:
    data = ragged(n=40, seed=2)
    save(tmp_path / "train.npz", events=data["x"], events_lengths=data["lengths"],
         profile=np.random.default_rng(4).normal(size=(40, 2)).astype(np.float32),
         steps=data["x"][:, :, :1].cumsum(1), churn=data["y"])
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump({**GRAPH, "data": {"train": "train.npz"}}))
    want, want_logs = run(path, tmp_path / "memory")
    monkeypatch.setattr(rnnc.data, "ROWS_ABOVE", 0)
    assert isinstance(load_training_data(load_model(path)).train, RowsDataset)
    got, got_logs = run(path, tmp_path / "disk")
    same(want, got)
    assert got_logs == want_logs


def test_damaged_member_is_one_line_naming_it(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = ragged(n=200, seed=1)
    archive = tmp_path / "train.npz"
    np.savez_compressed(archive, x=data["x"], y=data["y"], lengths=data["lengths"])
    with zipfile.ZipFile(archive) as zipped:
        info = zipped.getinfo("x.npy")
    raw = bytearray(archive.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[middle : middle + 32] = bytes(b ^ 0x5A for b in raw[middle : middle + 32])  # the deflated data, past the header
    archive.write_bytes(bytes(raw))
    monkeypatch.setattr(rnnc.data, "ROWS_ABOVE", 0)
    assert main(["train", str(spec(tmp_path, "train.npz")), "-o", str(tmp_path / "run"), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("rnnc: decoding")]
    assert len(err) == 1 and err[0].startswith(f"{archive}: 'x' is damaged ("), err
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []  # nothing half-written
