"""A chain's masked sequence loss under `--nproc 2`: the mean over the global batch's
real steps, as one process takes it, though the workers' shares hold different numbers
of them. Two workers train one process's weights (to 1e-5) and log its losses,
validation included, with `training.tbptt` cutting the batches into chunks of 4 steps
(each chunk's mean, and its weight in the batch's logged loss, counts every worker's
real steps); the rows are arranged so the shares differ a lot (one worker gets short
sequences, the other long), where averaging the workers' own means would not do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from ddp_runs import rnnc

from rnnc.artifacts import load_weights
from rnnc.cli import main


def _logs(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_workers_take_the_global_mean_over_real_steps(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n, steps = 80, 10
    lengths = np.where(np.arange(n) % 2 == 0, rng.integers(1, 4, n), rng.integers(7, steps + 1, n))
    x = rng.normal(size=(n, steps, 2)).astype(np.float32)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
    y = np.cumsum(x[:, :, :1], axis=1).astype(np.float32) / 3
    np.savez(tmp_path / "train.npz", x=x[:64], y=y[:64], lengths=lengths[:64])
    np.savez(tmp_path / "val.npz", x=x[64:], y=y[64:], lengths=lengths[64:])
    spec = tmp_path / "labels.yaml"
    spec.write_text(yaml.safe_dump({
        "rnnc": 1, "name": "masked-ddp", "input": {"shape": [None, 2]},
        "layers": [{"type": "gru", "units": 5, "return_sequences": True}, {"type": "dense", "units": 1}],
        "loss": "mse", "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.5}, "metrics": ["mae"],
        "training": {"epochs": 3, "batch_size": 8, "shuffle": False, "tbptt": 4},
        "data": {"train": "train.npz", "validation": "val.npz"},
    }))
    done = rnnc("train", str(spec), "-o", str(tmp_path / "two"), "--nproc", "2", "--device", "cpu", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["train", str(spec), "-o", str(tmp_path / "one"), "--no-progress", "--device", "cpu"]) == 0
    one, two = load_weights(tmp_path / "one" / "weights.safetensors"), load_weights(tmp_path / "two" / "weights.safetensors")
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=0, atol=1e-5, err_msg=name)
    for a, b in zip(_logs(tmp_path / "one"), _logs(tmp_path / "two"), strict=True):
        for key in ("loss", "mae", "val_loss", "val_mae"):
            assert abs(b[key] - a[key]) <= 1e-5, (a["epoch"], key, a[key], b[key])
