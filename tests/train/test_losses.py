"""Losses: Keras's definitions, the fused logit forms equal to them, masked steps left out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnc import ir
from rnnc_torch import build_module
from rnnc_torch.losses import make_objective

from tiny_models import tiny_model

rng = np.random.default_rng(0)
PROBS = rng.uniform(0.02, 0.98, size=(8, 3))
BINARY = (rng.uniform(size=(8, 3)) > 0.5).astype(float)
LABELS = rng.integers(0, 3, size=8)
ONEHOT = np.eye(3)[LABELS]
SOFTMAX = PROBS / PROBS.sum(-1, keepdims=True)
OUT = rng.normal(size=(8, 3))
TARGET = rng.normal(size=(8, 3))


def huber(err: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(err) <= delta
    return np.where(small, 0.5 * err**2, delta * (np.abs(err) - 0.5 * delta))


# (loss, model output, target, reference value computed the Keras way)
REFERENCE = [
    (ir.Loss("binary_crossentropy"), PROBS, BINARY, np.mean(-(BINARY * np.log(PROBS) + (1 - BINARY) * np.log(1 - PROBS)))),
    (ir.Loss("categorical_crossentropy"), SOFTMAX, ONEHOT, np.mean(-np.log(SOFTMAX[np.arange(8), LABELS]))),
    (ir.Loss("sparse_categorical_crossentropy"), SOFTMAX, LABELS, np.mean(-np.log(SOFTMAX[np.arange(8), LABELS]))),
    (ir.Loss("mse"), OUT, TARGET, np.mean((OUT - TARGET) ** 2)),
    (ir.Loss("mae"), OUT, TARGET, np.mean(np.abs(OUT - TARGET))),
    (ir.Loss("huber", delta=1.0), OUT, TARGET, np.mean(huber(OUT - TARGET, 1.0))),
    (ir.Loss("huber", delta=0.3), OUT, TARGET, np.mean(huber(OUT - TARGET, 0.3))),
]


@pytest.mark.parametrize(("loss", "output", "target", "expected"), REFERENCE, ids=[f"{r[0].type}-{r[0].delta}" for r in REFERENCE])
def test_loss_matches_keras_definition(loss: ir.Loss, output: np.ndarray, target: np.ndarray, expected: float) -> None:
    objective = make_objective(loss, None)
    value = objective(torch.tensor(output), torch.tensor(target))
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_probabilities_are_clipped_like_keras() -> None:
    objective = make_objective(ir.Loss("binary_crossentropy"), None)
    value = objective(torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([[1.0], [0.0]], dtype=torch.float64))
    assert value.item() == pytest.approx(-np.log(1e-7), rel=1e-6)


# (loss, final layers, target for a batch of 5 over [6, 2] input)
FUSED = [
    ("binary_crossentropy", [ir.SimpleRNN(units=4), ir.Dense(units=1, activation="sigmoid")], lambda: torch.randint(0, 2, (5, 1)).float()),
    ("binary_crossentropy", [ir.SimpleRNN(units=4), ir.Dense(units=3, activation="sigmoid")], lambda: torch.randint(0, 2, (5, 3)).float()),
    ("categorical_crossentropy", [ir.GRU(units=4), ir.Dense(units=3, activation="softmax")], lambda: torch.eye(3)[torch.randint(0, 3, (5,))]),
    ("sparse_categorical_crossentropy", [ir.LSTM(units=4), ir.Dense(units=3, activation="softmax")], lambda: torch.randint(0, 3, (5,))),
    ("sparse_categorical_crossentropy", [ir.GRU(units=4, return_sequences=True), ir.Dense(units=3), ir.Activation("softmax")], lambda: torch.randint(0, 3, (5, 6))),
]


@pytest.mark.parametrize(("loss", "layers", "target"), FUSED, ids=[f"{f[0]}-{i}" for i, f in enumerate(FUSED)])
def test_fused_loss_equals_unfused(loss: str, layers: list[ir.Layer], target) -> None:
    model = tiny_model(layers, loss=loss)
    module = build_module(model)
    x = torch.randn(5, 6, 2)
    y = target()
    fused = make_objective(model.loss, module.final_activation)
    plain = make_objective(model.loss, module.final_activation, fuse=False)
    assert fused.fused and not plain.fused
    value_fused = fused(module(x, logits=True), y)
    value_plain = plain(module(x), y)
    assert value_fused.item() == pytest.approx(value_plain.item(), abs=1e-6)
    fast = fused.fast()
    assert fast is not None
    assert fast(module(x, logits=True), y).item() == pytest.approx(value_fused.item(), abs=1e-6)


def test_from_logits_reads_the_output_as_logits() -> None:
    logits = torch.randn(6, 1, dtype=torch.float64)
    y = torch.randint(0, 2, (6, 1)).double()
    on_logits = make_objective(ir.Loss("binary_crossentropy", from_logits=True), None)
    on_probs = make_objective(ir.Loss("binary_crossentropy"), None)
    assert on_logits(logits, y).item() == pytest.approx(on_probs(torch.sigmoid(logits), y).item(), abs=1e-9)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "mse", "binary_crossentropy"])
def test_masked_steps_do_not_count(loss: str) -> None:
    objective = make_objective(ir.Loss(loss), "softmax" if loss.startswith("sparse") else "sigmoid")
    out = torch.randn(2, 4, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 4)) if loss.startswith("sparse") else torch.rand(2, 4, 3, dtype=torch.float64).round()
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    value = objective(out, y, mask)
    changed = out.clone()
    changed[0, 2:] = 100.0  # padded steps of sample 0
    assert objective(changed, y, mask).item() == pytest.approx(value.item(), abs=1e-12)
    real = objective.elementwise(out, y)[mask]
    assert value.item() == pytest.approx(real.mean().item(), abs=1e-12)
