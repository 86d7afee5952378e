"""`rnnc evaluate` over a `.npy` directory (and a graph's Parquet): the `.npz`'s scores and per-sample losses, exactly.

A graph with two outputs (a static binary one with class names, a per-step tagger
masked by the input's lengths) and a chain, each evaluated in batches smaller than the
data so that several batches are read from the directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from parquet_cases import ragged, write_spec

pytest.importorskip("torch")
pytest.importorskip("rnnc_onnx")

from rnnc.cli import main  # noqa: E402

TWO_OUTPUTS = """
rnnc: 2
name: churn-tags
inputs:
  events: {shape: [null, 3]}
  profile: {shape: [2]}
layers:
  - {name: steps, type: gru, units: 4, return_sequences: true, input: events}
  - {name: tags, type: dense, units: 2, activation: softmax}
  - {name: enc, type: lstm, units: 5, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {name: churn, type: dense, units: 1, activation: sigmoid}
outputs:
  churn: {loss: binary_crossentropy, metrics: [accuracy, auc]}
  tags: {loss: sparse_categorical_crossentropy, metrics: [accuracy], loss_weight: 0.5}
optimizer: {type: adam, lr: 0.02}
training: {epochs: 1, batch_size: 16, seed: 3}
data: {train: train.npz}
"""


def evaluate(capsys: pytest.CaptureFixture[str], run: Path, data: Path, per_sample: Path) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(["evaluate", str(run), str(data), "--json", "--batch-size", "16", "--per-sample", str(per_sample)]) == 0
    return json.loads(capsys.readouterr().out), per_sample.read_text()


def convert(folder: Path, source: str) -> Path:
    assert main(["data", "convert", str(folder / source), "-o", str(folder / "npy"), "--no-progress"]) == 0
    return folder / "npy"


def test_graph_scores_equal_the_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    data = ragged(n=50, seed=11)
    profile = np.random.default_rng(5).normal(size=(50, 2)).astype(np.float32)
    np.savez(tmp_path / "train.npz", events=data["x"], events_lengths=data["lengths"], profile=profile, churn=data["y"],
             tags=data["tags"], churn_classes=np.array(["stays", "leaves"]))
    (tmp_path / "spec.yaml").write_text(TWO_OUTPUTS)
    torch.set_num_threads(1)
    assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]) == 0
    want, want_rows = evaluate(capsys, tmp_path / "run", tmp_path / "train.npz", tmp_path / "a.csv")
    got, got_rows = evaluate(capsys, tmp_path / "run", convert(tmp_path, "train.npz"), tmp_path / "b.csv")
    assert got == want
    assert got_rows == want_rows
    assert main(["data", "convert", str(tmp_path / "train.npz"), "-o", str(tmp_path / "t.parquet"), "--no-progress"]) == 0
    assert evaluate(capsys, tmp_path / "run", tmp_path / "t.parquet", tmp_path / "c.csv") == (want, want_rows)  # ragged events
    assert want["samples"] == 50 and set(want["reports"]) == {"churn", "tags"}
    assert want["reports"]["churn"]["classes"] == ["stays", "leaves"]
    # the tags' report counts real steps only, as the lengths say
    assert sum(sum(row) for row in want["reports"]["tags"]["confusion_matrix"]) == int(data["lengths"].sum())


def test_chain_scores_equal_the_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    data = ragged(n=40, seed=12)
    np.savez(tmp_path / "data.npz", x=data["x"], y=data["y"], lengths=data["lengths"])
    spec = write_spec(tmp_path, "data.npz", training={"epochs": 1, "batch_size": 16, "seed": 1})
    torch.set_num_threads(1)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]) == 0
    want, want_rows = evaluate(capsys, tmp_path / "run", tmp_path / "data.npz", tmp_path / "a.csv")
    got, got_rows = evaluate(capsys, tmp_path / "run", convert(tmp_path, "data.npz"), tmp_path / "b.csv")
    assert got == want and got_rows == want_rows and want["samples"] == 40


def test_directory_without_the_arrays_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A graph's run given a directory whose `.npy` files are not its arrays: each problem named, exit 2."""
    import torch

    data = ragged(n=20, seed=13)
    profile = np.zeros((20, 2), np.float32)
    np.savez(tmp_path / "train.npz", events=data["x"], events_lengths=data["lengths"], profile=profile, churn=data["y"],
             tags=data["tags"])
    (tmp_path / "spec.yaml").write_text(TWO_OUTPUTS)
    torch.set_num_threads(1)
    assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]) == 0
    (tmp_path / "bad").mkdir()
    np.save(tmp_path / "bad" / "events.npy", data["x"])
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "bad")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert lines and all(line.startswith(f"DATA ({tmp_path / 'bad'})") for line in lines)
    assert any("'profile'" in line for line in lines)
