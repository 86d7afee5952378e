"""Helpers of the tracking tests: `rnnc train` on the tiny models of tests/train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tiny_models import binary_data, write_spec

from rnnc.cli import main


def train(*args: str | Path) -> int:
    return main(["train", *map(str, args), "--device", "cpu", "--no-progress"])


def saved(run: Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl, one dict per epoch."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def spec_with_test(folder: Path, epochs: int = 3) -> Path:
    """The tiny spec of tests/train with a test file, trained for `epochs`."""
    x, y = binary_data(n=40, seed=5)
    np.savez(folder / "test.npz", x=x, y=y)
    return write_spec(folder, training={"epochs": epochs, "batch_size": 16, "seed": 3},
                      data={"train": "train.npz", "validation": "val.npz", "test": "test.npz"})


def read(folder: Path) -> dict[str, list[tuple[int, Any]]]:
    """Every tensor tag of the event files in `folder`: (step, value) in the order written,
    read by TensorBoard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
    }


def f32(value: float) -> float:
    """What TensorBoard holds of a logged value: the nearest float32 (its data server shows no float64)."""
    return float(np.float32(value))
