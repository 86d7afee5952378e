"""v2 specs and data for the `rnnc predict` / `rnnc evaluate` tests of compiled graphs
(`compiled` writes a run-like folder with fresh weights, no torch): `ADD` decodes
(feedback), `TWO` has two outputs, `CONV`'s output steps are a convolution's. Test
modules next to this file import it as `from predict_cases import ...`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seq2seq_spec import seq2seq_spec

from rnnc.cli import main

ADD = seq2seq_spec(units=5)

TWO = """rnnc: 2
name: two
inputs:
  events: {shape: [null, 3]}
  profile: {shape: [2]}
layers:
  - {name: enc, type: gru, units: 4, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {name: kind, type: dense, units: 3, activation: softmax}
  - {name: level, type: dense, units: 1, input: both}
outputs:
  kind: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
  level: {loss: mse, loss_weight: 0.5, metrics: [mae]}
optimizer: adam
training: {epochs: 1, batch_size: 64}
"""

CONV = """rnnc: 2
name: conv
inputs:
  events: {shape: [null, 2]}
layers:
  - {name: c, type: conv1d, filters: 2, kernel_size: 2, padding: valid, input: events}
  - {name: tags, type: dense, units: 1}
outputs:
  tags: {loss: mse}
optimizer: adam
"""


def compiled(folder: Path, spec: str) -> Path:
    """A run-like folder: spec.yaml and its model.onnx with fresh weights (no torch)."""
    folder.mkdir(exist_ok=True)
    (folder / "spec.yaml").write_text(spec)
    assert main(["compile", str(folder / "spec.yaml"), "--backend", "onnx", "-o", str(folder / "model.onnx")]) == 0
    return folder


def add_data(path: Path, n: int = 9, targets: bool = False) -> dict[str, np.ndarray]:
    """`n` questions and teacher-forced answers for `ADD` (ragged, padded with 0), saved
    as `path` and returned; with `targets`, `answer` too (answer_in shifted by one)."""
    rng = np.random.default_rng(3)
    question, answer_in = rng.integers(1, 12, size=(n, 6)), rng.integers(1, 11, size=(n, 4))
    question[np.arange(6)[None, :] >= rng.integers(1, 7, size=n)[:, None]] = 0
    answer_in[:, 0] = 12
    answer_in[np.arange(4)[None, :] >= rng.integers(1, 5, size=n)[:, None]] = 0
    arrays = {"question": question, "answer_in": answer_in}
    if targets:
        arrays["answer"] = np.roll(answer_in, -1, axis=1)
    np.savez(path, **arrays)
    return arrays
