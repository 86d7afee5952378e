"""A graph (spec version 2) under `--nproc 2` trains what one process trains.

Two torchrun workers (gloo on loopback) on the global batch of one process end with
the same weights (normalization statistics, which rank 0 adapts and sends, included)
to 1e-5 and log the same numbers every epoch: each output's loss and metric and their
weighted sum, on training and validation, reduced over the workers (graph_ddp_case.py
has the graph: two per-sample outputs with loss weights 0.5 and 2, and a per-step one
whose mean is over the global batch's real steps).
"""

from __future__ import annotations

from pathlib import Path

from ddp_runs import rnnc
from graph_ddp_case import assert_trained_alike, logs_of, one_process, write_data, write_spec


def test_two_workers_train_the_graph_one_process_trains(tmp_path: Path) -> None:
    write_data(tmp_path)
    done = rnnc("train", str(write_spec(tmp_path, "train.npz")), "-o", str(tmp_path / "run2"), "--nproc", "2",
                "--device", "cpu", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 4/4") == 1, done.stdout  # rank 0 alone prints
    one = one_process(tmp_path)
    assert_trained_alike(one, tmp_path / "run2")
    for logs in logs_of(tmp_path / "run2"):  # the loss is the weighted sum of the outputs' means
        for prefix in ("", "val_"):
            parts = 0.5 * logs[f"{prefix}kind_loss"] + 2.0 * logs[f"{prefix}score_loss"] + logs[f"{prefix}steps_loss"]
            assert abs(logs[f"{prefix}loss"] - parts) <= 1e-5
    first, last = logs_of(one)[0], logs_of(one)[-1]
    assert last["loss"] < 0.5 * first["loss"]  # it trains
