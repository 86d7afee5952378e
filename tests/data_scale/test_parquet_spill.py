"""A Parquet data set above `ROWS_ABOVE` trains from the data cache, to the weights of the set decoded in memory.

`rnnc.parquet_spill` decodes the set once into `RNNC_DATA_CACHE` (flat values and
offsets per column) and training reads each batch's rows from there by offset; the
weights and every logged number must equal those of the set decoded whole in memory
(and so of its padded `.npz`), for a chain with a validation file and for a graph. The
cache is reused by the next run, decoded again when the file changes or the cache is
damaged; a damaged Parquet file is one line naming it, and `rnnc check` builds nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import rnnc.data  # noqa: E402
import rnnc.data_parquet  # noqa: E402
from rnnc.artifacts import load_weights  # noqa: E402
from rnnc.cli import main  # noqa: E402
from rnnc.data import load_training_data  # noqa: E402
from rnnc.parquet_spill import SpilledColumn, open_table, spill  # noqa: E402
from rnnc.rows_dataset import RowsDataset  # noqa: E402
from rnnc.spec import load_model  # noqa: E402
from test_npy_dir import STEPS_GRAPH, ragged, same, spec  # noqa: E402

STEP = pa.list_(pa.list_(pa.float32(), 3))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RNNC_DATA_CACHE", str(folder))
    monkeypatch.setattr(rnnc.data_parquet, "BATCH_BYTES", 512)  # several decoded pieces per file
    return folder


def cut(values: np.ndarray, lengths: np.ndarray) -> list[Any]:
    return [row[:n].tolist() for row, n in zip(values, lengths)]


def write_chain(path: Path, data: dict[str, np.ndarray], rows: slice) -> Path:
    table = pa.table({"x": pa.array(cut(data["x"][rows], data["lengths"][rows]), STEP), "y": pa.array(data["y"][rows])})
    pq.write_table(table.replace_schema_metadata({"rnnc.classes": '{"classes": ["no", "yes"]}'}), path, row_group_size=8)
    return path


def run(spec_path: Path, out: Path, **options: Any) -> tuple[dict[str, np.ndarray], list[dict]]:
    import torch
    from rnnc_torch.train import train_run

    torch.set_num_threads(1)
    history = train_run(load_model(spec_path), out, device="cpu", progress=False, **options)
    return load_weights(out / "weights.safetensors"), [{k: v for k, v in h.items() if k != "time"} for h in history]


def spilled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rnnc.data, "ROWS_ABOVE", 0)


def test_chain_from_the_cache_trains_as_in_memory(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ragged(n=50, seed=7)
    write_chain(tmp_path / "train.parquet", data, slice(0, 40))
    write_chain(tmp_path / "val.parquet", data, slice(40, None))
    np.savez(tmp_path / "train.npz", x=data["x"][:40], y=data["y"][:40], lengths=data["lengths"][:40])
    np.savez(tmp_path / "val.npz", x=data["x"][40:], y=data["y"][40:], lengths=data["lengths"][40:])
    training = {"epochs": 3, "batch_size": 8, "seed": 3}
    npz = spec(tmp_path, "train.npz", data={"train": "train.npz", "validation": "val.npz"}, training=training)
    parquet = spec(tmp_path, "train.parquet", data={"train": "train.parquet", "validation": "val.parquet"}, training=training)
    want, want_logs = run(npz, tmp_path / "npz")
    memory, memory_logs = run(parquet, tmp_path / "memory")
    assert not cache.exists()  # small: decoded in memory
    spilled(monkeypatch)
    files = load_training_data(load_model(parquet))
    assert isinstance(files.train, RowsDataset) and isinstance(files.validation, RowsDataset)
    assert isinstance(files.train.rows.data["x"], SpilledColumn)  # type: ignore[attr-defined]
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2  # the training and the validation file
    got, got_logs = run(parquet, tmp_path / "disk")
    same(memory, got)
    same(want, got)
    assert got_logs == memory_logs == want_logs and "val_accuracy" in got_logs[-1]


GRAPH = STEPS_GRAPH


def test_graph_from_the_cache_trains_as_in_memory(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ragged(n=40, seed=2)
    lengths = data["lengths"]
    table = pa.table({"events": pa.array(cut(data["x"], lengths), STEP),
                      "profile": pa.array(np.random.default_rng(4).normal(size=(40, 2)).astype(np.float32).tolist(),
                                          pa.list_(pa.float32(), 2)),
                      "steps": pa.array(cut(data["x"][:, :, :1].cumsum(1), lengths), pa.list_(pa.list_(pa.float32(), 1))),
                      "churn": pa.array(data["y"])})
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 25), tmp_path / "parts" / "0.parquet", row_group_size=6)
    pq.write_table(table.slice(25), tmp_path / "parts" / "1.parquet", row_group_size=6)
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump({**GRAPH, "data": {"train": "parts"}}))
    want, want_logs = run(path, tmp_path / "memory")
    assert not cache.exists()
    spilled(monkeypatch)
    got, got_logs = run(path, tmp_path / "disk")
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1
    same(want, got)
    assert got_logs == want_logs and "val_churn_accuracy" in got_logs[-1]


def test_cache_is_reused_then_decoded_again_when_the_file_changes(tmp_path: Path, cache: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = ragged(n=30, seed=1)
    path = write_chain(tmp_path / "d.parquet", data, slice(None))
    index = np.array([29, 3, 3, 0, 17])
    first = spill(path).take(index)
    assert "decoding" in capsys.readouterr().err
    steps = int(data["lengths"][index].max())
    np.testing.assert_array_equal(first["x"], data["x"][index, :steps])
    np.testing.assert_array_equal(first["y"], data["y"][index])

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded again")

    decoded = rnnc.data_parquet.decoded
    monkeypatch.setattr(rnnc.data_parquet, "decoded", no_decoding)
    again = open_table(path, spill_above=1 << 40)  # the cache wins over decoding in memory
    assert isinstance(again.columns["x"], SpilledColumn)
    for name in first:
        np.testing.assert_array_equal(again.take(index)[name], first[name])
    assert capsys.readouterr().err == ""

    monkeypatch.setattr(rnnc.data_parquet, "decoded", decoded)
    other = ragged(n=30, seed=9)
    write_chain(path, other, slice(None))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # a change within the clock's resolution too
    changed = spill(path).take(index)
    assert "out of date" in capsys.readouterr().err
    np.testing.assert_array_equal(changed["y"], other["y"][index])
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1  # decoded again in its place


@pytest.mark.parametrize("damage", ["truncated", "header", "manifest"])
def test_damaged_cache_is_decoded_again(tmp_path: Path, cache: Path, damage: str) -> None:
    data = ragged(n=30, seed=1)
    path = write_chain(tmp_path / "d.parquet", data, slice(None))
    want = spill(path).take(np.arange(30))
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    values = folder / "c0.npy"
    raw = values.read_bytes()
    if damage == "truncated":
        values.write_bytes(raw[:-10])
    elif damage == "header":
        values.write_bytes(raw[:20] + b"garbage" + raw[27:])
    else:
        (folder / "manifest.json").write_text("{")
    got = spill(path).take(np.arange(30))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_resume_from_the_cache_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ragged(n=40, seed=5)
    write_chain(tmp_path / "train.parquet", data, slice(None))
    path = spec(tmp_path, "train.parquet", training={"epochs": 4, "batch_size": 8, "seed": 2, "validation_split": 0.25})
    spilled(monkeypatch)
    want, want_logs = run(path, tmp_path / "whole")
    batch, calls = RowsDataset.batch, [0]

    def dies(self: RowsDataset, index: np.ndarray) -> Any:
        calls[0] += 1
        if calls[0] == 2 * (4 + 1) + 3:  # inside epoch 3 (4 training batches and 1 validation batch an epoch)
            raise KeyboardInterrupt
        return batch(self, index)

    monkeypatch.setattr(RowsDataset, "batch", dies)
    with pytest.raises(KeyboardInterrupt):
        run(path, tmp_path / "run")
    monkeypatch.setattr(RowsDataset, "batch", batch)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    got, logs = run(path, tmp_path / "run", resume=True)
    same(want, got)
    assert [entry["epoch"] for entry in logs] == [1, 2, 3, 4] and logs[2:] == want_logs[2:]


def test_damaged_parquet_is_one_line_and_leaves_no_cache(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = ragged(n=200, seed=3)
    path = write_chain(tmp_path / "train.parquet", data, slice(None))
    spilled(monkeypatch)
    assert main(["check", str(spec(tmp_path, "train.parquet"))]) == 0
    assert not cache.exists()  # rnnc check reads the footers alone
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3 : len(raw) // 3 + 64] = b"\xff" * 64  # inside the pages, the footer intact
    path.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["train", str(spec(tmp_path, "train.parquet")), "-o", str(tmp_path / "run"), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("rnnc: decoding")]
    assert len(err) == 1 and err[0].startswith(f"{path}: not a readable Parquet file, truncated or corrupt ("), err
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []  # nothing half-written
