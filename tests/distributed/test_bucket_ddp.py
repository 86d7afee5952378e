"""`training.bucket_by_length` under `--nproc`: the single process's bucketed epoch
order, split among the workers, so step k of all workers together is step k of one
process and each worker steps on rows of similar lengths.

In process: the shards of every step make up the single process's bucketed batch.
Launched: two workers reading a `.npy` directory train what one process trains from the
`.npz` (weights and logs to 1e-5), which is not what it trains unbucketed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ddp_runs import rnnc

from rnnc.artifacts import load_weights
from rnnc.cli import main
from rnnc_torch.batching import bucketed
from rnnc_torch.distributed import World, shard_order
from rnnc_torch.trainer import epoch_seed


@pytest.mark.parametrize(("n", "size", "batch"), [(400, 2, 8), (403, 2, 8), (1000, 4, 16)])
def test_each_step_of_the_workers_is_the_single_process_bucketed_batch(n: int, size: int, batch: int) -> None:
    lengths = torch.from_numpy(np.random.default_rng(1).integers(1, 300, n))
    generator = torch.Generator().manual_seed(epoch_seed(7, 2))  # what one process draws (trainer.py)
    single = bucketed(torch.randperm(n, generator=generator), lengths, batch, generator)
    shards = [shard_order(n, World(rank, size, rank, torch.device("cpu")), 7, 2, True, lengths, batch) for rank in range(size)]
    local = batch // size
    spread = []
    for step in range(n // batch):  # the whole batches (a short last one is padded by repeating the head)
        parts = [shard[step * local : (step + 1) * local] for shard in shards]
        assert sorted(torch.cat(parts).tolist()) == sorted(single[step * batch : (step + 1) * batch].tolist())
        spread += [int(lengths[part].max() - lengths[part].min()) for part in parts]
    assert np.mean(spread) < 20  # similar lengths in every worker's batch (lengths span 1-300)


def _write(folder: Path) -> None:
    rng = np.random.default_rng(0)
    n, steps = 128, 12
    lengths = rng.integers(1, steps + 1, n)
    x = rng.normal(size=(n, steps, 2)).astype(np.float32)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    np.savez(folder / "train.npz", x=x, y=y, lengths=lengths)
    (folder / "train").mkdir()
    for name, value in {"x": x, "y": y, "lengths": lengths}.items():
        np.save(folder / "train" / f"{name}.npy", value)
    for train in ("train.npz", "train"):
        (folder / f"{train}.yaml").write_text(yaml.safe_dump({
            "rnnc": 1, "name": "bucket-ddp", "input": {"shape": [None, 2]},
            "layers": [{"type": "gru", "units": 6}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
            "loss": "binary_crossentropy", "optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.5}, "metrics": ["accuracy", "auc"],
            "training": {"epochs": 3, "batch_size": 8, "seed": 3, "validation_split": 0.25, "bucket_by_length": True},
            "data": {"train": train},
        }))


def _logs(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_bucketed_workers_from_disk_train_what_one_process_trains(tmp_path: Path) -> None:
    _write(tmp_path)
    done = rnnc("train", str(tmp_path / "train.yaml"), "-o", str(tmp_path / "two"), "--nproc", "2", "--device", "cpu", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    spec = str(tmp_path / "train.npz.yaml")
    assert main(["train", spec, "-o", str(tmp_path / "one"), "--no-progress", "--device", "cpu"]) == 0
    assert main(["train", spec, "-o", str(tmp_path / "plain"), "--no-progress", "--device", "cpu",
                 "--set", "training.bucket_by_length=false"]) == 0
    one, two, plain = (load_weights(tmp_path / run / "weights.safetensors") for run in ("one", "two", "plain"))
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=0, atol=1e-5, err_msg=name)
    assert max(float(np.abs(plain[name] - one[name]).max()) for name in one) > 1e-3  # bucketing changed the batches
    for a, b in zip(_logs(tmp_path / "one"), _logs(tmp_path / "two"), strict=True):
        for key in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"):
            assert abs(b[key] - a[key]) <= 1e-5, (a["epoch"], key, a[key], b[key])
