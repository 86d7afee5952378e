"""A graph (spec v2) trains from a `.npy` directory a batch at a time, to the weights of its `.npz`, bit for bit.

The graph has a normalization layer (adapted in chunks of rows), a per-step output
masked by the lengths and a per-sample one with metrics, and a validation split; the
trainer gathers each batch from disk (`StreamData`) and never holds the training set
whole. `training.tbptt` cuts the streamed batches as it cuts them in memory; a run
stopped in the middle of an epoch resumes from its checkpoint to the same weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from rnnc import graph_data  # noqa: E402
from rnnc.artifacts import load_weights  # noqa: E402
from rnnc.data import load_file  # noqa: E402
from rnnc.rows_dataset import RowsDataset  # noqa: E402
from rnnc.spec import load_model  # noqa: E402

SPEC: dict[str, Any] = {
    "rnnc": 2, "name": "multi",
    "inputs": {"events": {"shape": [None, 3]}, "profile": {"shape": [2]}},
    "layers": [
        {"name": "norm", "type": "normalization", "input": "events"},
        {"name": "enc", "type": "gru", "units": 5, "return_sequences": True},
        {"name": "steps", "type": "dense", "units": 1},
        {"name": "last", "type": "pool", "mode": "last", "input": "enc"},
        {"name": "both", "type": "concatenate", "input": ["last", "profile"]},
        {"name": "kind", "type": "dense", "units": 3, "activation": "softmax"},
    ],
    "outputs": {"steps": {"loss": "mse", "metrics": ["mae"]},
                "kind": {"loss": "sparse_categorical_crossentropy", "loss_weight": 0.5, "metrics": ["accuracy"]}},
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 3, "batch_size": 7, "seed": 4, "validation_split": 0.25},
}
N, T = 45, 8


def write(folder: Path, seed: int = 0, keep: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The same samples as `train.npz` and as the directory `train/` (only the arrays `keep`)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, N)
    events = rng.normal(2.0, 3.0, size=(N, T, 3)).astype(np.float32)
    events[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    arrays = {"events": events, "events_lengths": lengths, "profile": rng.normal(size=(N, 2)).astype(np.float32),
              "steps": events[:, :, :1].cumsum(1), "kind": rng.integers(0, 3, N),
              "kind_classes": np.array(["a", "b", "c"])}
    arrays = {k: v for k, v in arrays.items() if keep is None or k in keep}
    np.savez(folder / "train.npz", **arrays)
    (folder / "train").mkdir()
    for name, value in arrays.items():
        np.save(folder / "train" / f"{name}.npy", value)
    return arrays


def spec(folder: Path, train: str, **training: Any) -> Path:
    path = folder / f"{train.replace('.', '_')}.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "training": {**SPEC["training"], **training}, "data": {"train": train}}))
    return path


def train(spec_path: Path, run: Path, **options: Any) -> tuple[dict[str, np.ndarray], list[dict]]:
    from rnnc_torch.train import train_run

    torch.set_num_threads(1)
    history = train_run(load_model(spec_path), run, device="cpu", progress=False, **options)
    return load_weights(run / "weights.safetensors"), [{k: v for k, v in h.items() if k != "time"} for h in history]


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each batch read from disk took."""
    sizes: list[int] = []
    batch = RowsDataset.batch

    def counted(self: RowsDataset, index: np.ndarray) -> Any:
        sizes.append(len(index))
        return batch(self, index)

    monkeypatch.setattr(RowsDataset, "batch", counted)
    return sizes


def test_same_weights_and_logs_as_the_npz(tmp_path: Path, taken: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_data, "ADAPT_BYTES", 10 * T * 3 * 4)  # normalization adapts over 10 rows at a time
    write(tmp_path)
    assert isinstance(load_file(load_model(spec(tmp_path, "train")), tmp_path / "train"), RowsDataset)
    want, want_logs = train(spec(tmp_path, "train.npz"), tmp_path / "a")
    assert taken == []
    got, got_logs = train(spec(tmp_path, "train"), tmp_path / "b")
    same(want, got)
    assert got_logs == want_logs and {"val_loss", "val_kind_accuracy", "steps_mae"} <= set(got_logs[-1])
    assert taken and max(taken) == 10  # never the whole set: batches of 7, chunks of 10 rows for normalization
    assert sum(n == 7 for n in taken) >= 3 * (33 // 7)  # every epoch's batches came from disk
    stats = {k: v for k, v in want.items() if k.endswith(("mean", "variance"))}
    real = np.load(tmp_path / "train.npz")
    real_steps = np.arange(T)[None, :] < real["events_lengths"][:33, None]  # the training part: 33 of 45 rows
    first = real["events"][:33][real_steps].astype(np.float64)
    np.testing.assert_allclose(stats["layers.0.mean"], first.mean(0), rtol=1e-6)  # the training part's, real steps only
    np.testing.assert_allclose(stats["layers.0.variance"], first.var(0), rtol=1e-6)


def test_tbptt_from_disk_cuts_as_in_memory(tmp_path: Path) -> None:
    write(tmp_path, seed=1, keep=("events", "events_lengths", "steps"))
    body = {**SPEC, "inputs": {"events": SPEC["inputs"]["events"]}, "outputs": {"steps": {"loss": "mse", "metrics": ["mae"]}},
            "layers": [layer for layer in SPEC["layers"] if layer["name"] in ("norm", "enc", "steps")]}
    runs = []
    for name in ("train.npz", "train"):
        path = tmp_path / f"tbptt-{name}.yaml"
        arrays = {"train": name}
        path.write_text(yaml.safe_dump({**body, "training": {**SPEC["training"], "tbptt": 3}, "data": arrays}))
        runs.append(train(path, tmp_path / f"run-{name}"))
    same(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_stopped_mid_epoch_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, seed=2)
    want, _ = train(spec(tmp_path, "train.npz", epochs=4), tmp_path / "whole")
    batch, calls = RowsDataset.batch, [0]

    def dies(self: RowsDataset, index: np.ndarray) -> Any:
        calls[0] += 1
        if calls[0] == 2 + 3 * (5 + 2) + 1:  # normalization: 2 passes; each epoch 5 training + 2 validation batches
            raise KeyboardInterrupt
        return batch(self, index)

    monkeypatch.setattr(RowsDataset, "batch", dies)
    path = spec(tmp_path, "train", epochs=4)
    with pytest.raises(KeyboardInterrupt):
        train(path, tmp_path / "run")
    monkeypatch.setattr(RowsDataset, "batch", batch)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3
    got, logs = train(path, tmp_path / "run", resume=True)
    same(want, got)
    assert [entry["epoch"] for entry in logs] == [1, 2, 3, 4]


def test_ragged_parquet_trains_to_the_npz_weights(tmp_path: Path, taken: list[int]) -> None:
    """Lists cut at each row's length (no lengths column), per-step targets too, in two files."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    arrays = write(tmp_path, seed=3)
    lengths = arrays["events_lengths"]
    (tmp_path / "parts").mkdir()
    for name, rows in (("0.parquet", slice(0, 20)), ("1.parquet", slice(20, None))):
        cut = lambda values: [row[:n].tolist() for row, n in zip(values[rows], lengths[rows])]  # noqa: E731
        table = pa.table({
            "events": pa.array(cut(arrays["events"]), pa.list_(pa.list_(pa.float32(), 3))),
            "profile": pa.array(arrays["profile"][rows].tolist(), pa.list_(pa.float32(), 2)),
            "steps": pa.array(cut(arrays["steps"]), pa.list_(pa.list_(pa.float32(), 1))),
            "kind": pa.array(arrays["kind"][rows]),
        }).replace_schema_metadata({"rnnc.classes": '{"kind_classes": ["a", "b", "c"]}'})
        pq.write_table(table, tmp_path / "parts" / name, row_group_size=8)
    want, want_logs = train(spec(tmp_path, "train.npz"), tmp_path / "a")
    got, got_logs = train(spec(tmp_path, "parts"), tmp_path / "b")
    same(want, got)
    assert got_logs == want_logs
    assert taken[:2] == [33, 33] and max(taken[2:]) == 7  # normalization's two passes over one 32 MB chunk, then batches
