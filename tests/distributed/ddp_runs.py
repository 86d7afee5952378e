"""A tiny spec for the distributed tests, and `rnnc` run as a subprocess with a timeout.

Workers are real torchrun processes on 127.0.0.1 (gloo); the timeout turns a hang into
a failed test instead of a stalled CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

TIMEOUT_S = 120  # one launch of two workers takes ~10 s; a hang is cut here


def write_spec(folder: Path, *, n: int = 96, n_val: int = 33, **training: Any) -> Path:
    """A GRU binary classifier without dropout, SGD, and its data in `folder`."""
    import yaml

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n + n_val, 6, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    np.savez(folder / "train.npz", x=x[:n], y=y[:n])
    np.savez(folder / "val.npz", x=x[n:], y=y[n:])
    spec = {
        "rnnc": 1,
        "name": "tiny-ddp",
        "input": {"shape": [6, 2]},
        "layers": [{"type": "gru", "units": 8}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy",
        "optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.9},
        "metrics": ["accuracy", "auc"],
        "training": {"epochs": 2, "batch_size": 16, "seed": 3, **training},
        "data": {"train": "train.npz", "validation": "val.npz"},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def rnnc(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m rnnc ARGS` in a subprocess, cut after TIMEOUT_S."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNC_DIST_TIMEOUT": "60"}
    return subprocess.run([sys.executable, "-m", "rnnc", *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
