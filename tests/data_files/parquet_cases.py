"""Ragged data written to Parquet with pyarrow directly, and the same data as a padded `.npz`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml


def ragged(n: int = 40, steps: int = 7, features: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """x zero-padded `[n, steps, features]` with lengths in [1, steps] (one of them
    `steps`), y whether the first feature sums above zero, and per-step class ids `tags`."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, size=n)
    lengths[0] = steps
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    real = np.arange(steps)[None, :] < lengths[:, None]
    x[~real] = 0
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    tags = np.where(real, (x[:, :, 1] > 0).astype(np.int64), 0)
    return {"x": x, "y": y, "lengths": lengths.astype(np.int64), "tags": tags}


def sequences(values: np.ndarray, lengths: np.ndarray) -> list[Any]:
    return [row[:n].tolist() for row, n in zip(values, lengths)]


def step_type(features: int | None, value: pa.DataType = pa.float32()) -> pa.DataType:
    return pa.list_(value if features is None else pa.list_(value, features))


def write_parquet(path: Path, columns: dict[str, pa.Array], row_group_size: int = 16, **metadata: bytes) -> Path:
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_spec(folder: Path, train: str, **sections: Any) -> Path:
    spec: dict[str, Any] = {
        "rnnc": 1,
        "name": "ragged",
        "input": {"shape": [None, 3]},
        "layers": [{"type": "lstm", "units": 6}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.02},
        "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 8, "seed": 5},
        "data": {"train": train},
    }
    spec.update(sections)
    path = folder / f"spec-{Path(train).stem}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# a graph: a sequence input with lengths, static features, one binary output
GRAPH = """
rnnc: 2
name: churn
inputs:
  events: {shape: [null, 3]}
  profile: {shape: [2]}
layers:
  - {name: enc, type: lstm, units: 5, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {name: churn, type: dense, units: 1, activation: sigmoid}
outputs:
  churn: {loss: binary_crossentropy, metrics: [accuracy]}
optimizer: {type: adam, lr: 0.02}
training: {epochs: 2, batch_size: 8, seed: 2}
data: {train: TRAIN}
"""
