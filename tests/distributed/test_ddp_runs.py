"""Two workers on loopback train what one process trains, resume, and fail cleanly.

Each test launches `rnnc train --nproc 2` (torchrun, gloo on 127.0.0.1, a free port)
as a subprocess with a timeout. The equivalence: no dropout, SGD, the same global batch
(16 = 2 x 8) over 96 samples (even shards), so DDP's mean of the two local-mean
gradients is the single-process gradient, and the weights agree to 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ddp_runs import rnnc, write_spec

from rnnc.artifacts import load_weights
from rnnc.cli import main


def _logs(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-worker run of the tiny spec (2 epochs), shared by the tests below."""
    folder = tmp_path_factory.mktemp("ddp")
    spec = write_spec(folder)
    done = rnnc("train", str(spec), "-o", str(folder / "run2"), "--nproc", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2") == 1, done.stdout  # rank 0 alone prints
    return folder


def test_two_workers_match_one_process(two_workers: Path) -> None:
    spec = two_workers / "tiny.yaml"
    assert main(["train", str(spec), "-o", str(two_workers / "run1"), "--no-progress", "--device", "cpu"]) == 0
    one, two = load_weights(two_workers / "run1" / "weights.safetensors"), load_weights(two_workers / "run2" / "weights.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=0, atol=1e-5, err_msg=name)
    # Logs are reduced over the workers: the same numbers as one process's.
    for single, pair in zip(_logs(two_workers / "run1"), _logs(two_workers / "run2"), strict=True):
        for key in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"):
            assert pair[key] == pytest.approx(single[key], abs=1e-5), key


def test_only_rank_zero_writes_the_run_directory(two_workers: Path) -> None:
    names = sorted(p.name for p in (two_workers / "run2").iterdir())
    assert names == ["checkpoint.pt", "metrics.jsonl", "model.onnx", "spec.yaml", "weights.safetensors"]
    assert [logs["epoch"] for logs in _logs(two_workers / "run2")] == [1, 2]


def test_resumed_two_worker_run_ends_as_the_uninterrupted_one(two_workers: Path) -> None:
    spec, run = two_workers / "tiny.yaml", two_workers / "resumed"
    first = rnnc("train", str(spec), "-o", str(run), "--nproc", "2", "--no-progress", "--set", "training.epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    second = rnnc("train", str(spec), "-o", str(run), "--nproc", "2", "--no-progress", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming" in second.stderr and "after epoch 1" in second.stderr
    whole, resumed = load_weights(two_workers / "run2" / "weights.safetensors"), load_weights(run / "weights.safetensors")
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)


def test_a_failed_worker_ends_the_run_with_a_clear_message(tmp_path: Path) -> None:
    """Rank 0 alone reads the checkpoint; when it fails, rank 1 (waiting for it in a
    collective) is stopped by torchrun: the run ends, it does not hang."""
    spec = write_spec(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    done = rnnc("train", str(spec), "-o", str(tmp_path / "run"), "--nproc", "2", "--no-progress", "--resume")
    assert done.returncode == 2
    assert "not a usable rnnc checkpoint" in done.stderr
    assert "rnnc train: worker 0 of 2 failed (exit status 2); the other workers were stopped" in done.stderr
