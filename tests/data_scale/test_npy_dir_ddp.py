"""`--nproc 2` from a `.npy` directory: each rank gathers its shard's rows from disk, and
the run ends with the weights of the same two-worker run from the `.npz`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from rnnc.artifacts import load_weights


def test_two_workers_from_disk_match_two_from_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 7, 50)
    x = rng.normal(size=(50, 6, 2)).astype(np.float32)
    x[np.arange(6)[None, :] >= lengths[:, None]] = 0.0
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=lengths)
    (tmp_path / "train").mkdir()
    for name, value in {"x": x, "y": y, "lengths": lengths}.items():
        np.save(tmp_path / "train" / f"{name}.npy", value)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNC_DIST_TIMEOUT": "60"}
    weights = {}
    for train in ("train.npz", "train"):
        spec = tmp_path / f"{train}.yaml"
        spec.write_text(yaml.safe_dump({
            "rnnc": 1, "name": "ddp-disk", "input": {"shape": [None, 2]},
            "layers": [{"type": "gru", "units": 4}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
            "loss": "binary_crossentropy", "optimizer": {"type": "sgd", "lr": 0.5}, "metrics": ["accuracy"],
            "training": {"epochs": 2, "batch_size": 8, "seed": 3, "validation_split": 0.2}, "data": {"train": train},
        }))
        run = tmp_path / f"run-{train}"
        done = subprocess.run([sys.executable, "-m", "rnnc", "train", str(spec), "-o", str(run), "--nproc", "2",
                               "--device", "cpu", "--no-progress"], capture_output=True, text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        weights[train] = load_weights(run / "weights.safetensors")
    for name, value in weights["train.npz"].items():
        np.testing.assert_array_equal(value, weights["train"][name], err_msg=name)
