"""Tiny IR models built by hand, and learnable data for them, for the training tests.

Models are built from IR values (through `rnnc.shapes.infer_nodes`), so these tests
exercise the trainer, not the YAML loader; the CLI tests write spec files instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from rnnc import ir
from rnnc.shapes import infer_nodes

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def tiny_model(
    layers: list[ir.Layer] | None = None,
    *,
    shape: tuple[int | None, ...] = (6, 2),
    dtype: str = "float32",
    loss: ir.Loss | str = "binary_crossentropy",
    optimizer: ir.Optimizer | None = None,
    metrics: tuple[str, ...] = (),
    **training: Any,
) -> ir.Model:
    """A small model (default: SimpleRNN(8) -> dense(1, sigmoid) on [6, 2])."""
    layers = layers if layers is not None else [ir.SimpleRNN(units=8), ir.Dense(units=1, activation="sigmoid")]
    input_ = ir.Input(shape=shape, dtype=dtype)  # type: ignore[arg-type]
    nodes, problems = infer_nodes(input_, layers)
    assert not problems, problems
    return ir.Model(
        name="tiny",
        input=input_,
        nodes=tuple(nodes),
        loss=ir.Loss(loss) if isinstance(loss, str) else loss,  # type: ignore[arg-type]
        optimizer=optimizer or ir.Optimizer("adam", lr=0.01),
        metrics=metrics,
        training=ir.Training(**{"epochs": 2, "batch_size": 16, **training}),
        spec_hash="test",
    )


def binary_data(n: int = 96, seed: int = 0, steps: int = 6, features: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A learnable task: is the sum of the first feature above zero?"""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    return x, (x[:, :, 0].sum(1) > 0).astype(np.float32)


def write_spec(folder: Path, n: int = 96, **sections: Any) -> Path:
    """A spec file for the tiny binary model and its data (`train.npz`, `val.npz`) in
    `folder`; keyword arguments replace or add top-level sections."""
    import yaml

    x, y = binary_data(n=n)
    np.savez(folder / "train.npz", x=x, y=y)
    np.savez(folder / "val.npz", x=x[:32], y=y[:32])
    spec: dict[str, Any] = {
        "rnnc": 1,
        "name": "tiny",
        "input": {"shape": [6, 2]},
        "layers": [{"type": "gru", "units": 8, "dropout": 0.1}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 16, "seed": 3},
        "data": {"train": "train.npz", "validation": "val.npz"},
    }
    spec.update(sections)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
