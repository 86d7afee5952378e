"""A small two-output graph for the data-parallel graph tests, its data in every layout.

The graph reads a variable-length sequence (normalized, the statistics adapted from the
data) and a static vector, and has two per-sample outputs with loss weights and a
per-step one masked past each row's length (its mean is over the real steps of the
global batch, which the workers' shares split unevenly), each with a metric. No dropout and SGD, so two workers on the same global batch train what one
process trains: 48 training rows (16 held out by `validation_split`), global batch 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

N, T = 64, 6
SPEC: dict[str, Any] = {
    "rnnc": 2, "name": "graph-ddp",
    "inputs": {"events": {"shape": [None, 3]}, "profile": {"shape": [2]}},
    "layers": [
        {"name": "norm", "type": "normalization", "input": "events"},
        {"name": "enc", "type": "gru", "units": 6, "return_sequences": True},
        {"name": "steps", "type": "dense", "units": 1},
        {"name": "last", "type": "pool", "mode": "last", "input": "enc"},
        {"name": "both", "type": "concatenate", "input": ["last", "profile"]},
        {"name": "kind", "type": "dense", "units": 3, "activation": "softmax"},
        {"name": "score", "type": "dense", "units": 1, "input": "both"},
    ],
    "outputs": {"kind": {"loss": "sparse_categorical_crossentropy", "loss_weight": 0.5, "metrics": ["accuracy"]},
                "score": {"loss": "mse", "loss_weight": 2.0, "metrics": ["mae"]},
                "steps": {"loss": "mse", "metrics": ["mae"]}},
    "optimizer": {"type": "sgd", "lr": 0.02, "momentum": 0.9},
    "training": {"epochs": 4, "batch_size": 8, "seed": 5, "validation_split": 0.25,
                 "early_stopping": {"monitor": "loss", "patience": 1}},
}
LOGGED = ("loss", "kind_loss", "score_loss", "steps_loss", "kind_accuracy", "score_mae", "steps_mae")
LOGGED += tuple(f"val_{name}" for name in LOGGED)


def write_data(folder: Path) -> dict[str, np.ndarray]:
    """The samples as `train.npz`, as the `.npy` directory `train/` and as ragged
    Parquet lists in two files under `parts/` (pyarrow needed for those)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, T + 1, N)
    events = rng.normal(1.0, 2.0, size=(N, T, 3)).astype(np.float32)
    events[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    profile = rng.normal(size=(N, 2)).astype(np.float32)
    arrays = {"events": events, "events_lengths": lengths, "profile": profile,
              "kind": (events[:, :, 0].sum(1) > lengths).astype(np.int64) + (profile[:, 0] > 0.5),
              "score": (events[:, :, 1].sum(1, keepdims=True) / 4 + profile[:, 1:]).astype(np.float32),
              "steps": events[:, :, :1].cumsum(1) / 4,  # per step: masked past each row's length
              "kind_classes": np.array(["low", "mid", "high"])}
    np.savez(folder / "train.npz", **arrays)
    (folder / "train").mkdir()
    for name, value in arrays.items():
        np.save(folder / "train" / f"{name}.npy", value)
    return arrays


def write_parquet(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "parts").mkdir()
    lengths = arrays["events_lengths"]
    for name, rows in (("0.parquet", slice(0, 27)), ("1.parquet", slice(27, None))):
        table = pa.table({
            "events": pa.array([row[:n].tolist() for row, n in zip(arrays["events"][rows], lengths[rows])],
                               pa.list_(pa.list_(pa.float32(), 3))),
            "profile": pa.array(arrays["profile"][rows].tolist(), pa.list_(pa.float32(), 2)),
            "kind": pa.array(arrays["kind"][rows]),
            "score": pa.array(arrays["score"][rows].tolist(), pa.list_(pa.float32(), 1)),
            "steps": pa.array([row[:n].tolist() for row, n in zip(arrays["steps"][rows], lengths[rows])],
                              pa.list_(pa.list_(pa.float32(), 1))),
        }).replace_schema_metadata({"rnnc.classes": '{"kind_classes": ["low", "mid", "high"]}'})
        pq.write_table(table, folder / "parts" / name, row_group_size=8)


def write_spec(folder: Path, train: str, **training: Any) -> Path:
    path = folder / f"{train.replace('.', '_')}.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "training": {**SPEC["training"], **training}, "data": {"train": train}}, sort_keys=False))
    return path


def arrays_of(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "train.npz") as data:
        return {name: data[name] for name in data.files}


def logs_of(run: Path) -> list[dict[str, float]]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def one_process(folder: Path) -> Path:
    """The single-process run of the `.npz` spec, in this process: `folder/run1`."""
    from rnnc.cli import main

    run = folder / "run1"
    assert main(["train", str(write_spec(folder, "train.npz")), "-o", str(run), "--no-progress", "--device", "cpu"]) == 0
    return run


def assert_trained_alike(one: Path, two: Path) -> None:
    """Runs `one` and `two` end with the same weights and per-epoch logs, to 1e-5."""
    from rnnc.artifacts import load_weights

    want, got = load_weights(one / "weights.safetensors"), load_weights(two / "weights.safetensors")
    assert want.keys() == got.keys() and {"layers.0.mean", "layers.0.variance"} <= want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)
    single, pair = logs_of(one), logs_of(two)
    assert [logs["epoch"] for logs in pair] == [1, 2, 3, 4]
    for a, b in zip(single, pair, strict=True):
        for key in LOGGED:
            assert abs(b[key] - a[key]) <= 1e-5, (a["epoch"], key, a[key], b[key])
