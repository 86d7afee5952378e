"""A graph's two-worker run from a `.npy` directory (each rank reads its own rows),
stopped after epoch 2 and resumed from rank 0's checkpoint, trains what one process
trains from the `.npz` (weights and logs to 1e-5; graph_ddp_case.py); only rank 0
writes the run directory."""

from __future__ import annotations

from pathlib import Path

from ddp_runs import rnnc
from graph_ddp_case import assert_trained_alike, one_process, write_data, write_spec


def test_resumed_graph_run_from_a_npy_directory_trains_as_one_process(tmp_path: Path) -> None:
    write_data(tmp_path)
    spec, run = str(write_spec(tmp_path, "train")), tmp_path / "resumed"
    args = ("--nproc", "2", "--device", "cpu", "--no-progress")
    first = rnnc("train", spec, "-o", str(run), *args, "--set", "training.epochs=2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = rnnc("train", spec, "-o", str(run), *args, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming" in second.stderr and "after epoch 2" in second.stderr
    assert second.stdout.count("epoch 3/4") == 1 and "epoch 2/4" not in second.stdout
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "model.onnx", "spec.yaml", "weights.safetensors"]
    assert_trained_alike(one_process(tmp_path), run)
