"""Metrics: values worked out by hand, auc against a brute-force pair count."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rnnc import ir
from rnnc_torch.metrics import compute_metrics

BCE, SPARSE, CCE, MSE = (ir.Loss(t) for t in ("binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy", "mse"))

BIN_P = np.array([[0.9], [0.2], [0.6], [0.4]])
BIN_Y = np.array([[1.0], [0.0], [0.0], [1.0]])
# argmax per row: 0, 1, 2, 1, 0
MC_P = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.5, 0.2, 0.3]])
MC_Y = np.array([0, 1, 1, 1, 2])

# (metric, loss, probabilities, targets, expected)
CASES = [
    ("accuracy", BCE, BIN_P, BIN_Y, 0.5),
    ("precision", BCE, BIN_P, BIN_Y, 0.5),
    ("recall", BCE, BIN_P, BIN_Y, 0.5),
    ("f1", BCE, BIN_P, BIN_Y, 0.5),
    ("auc", BCE, BIN_P, BIN_Y, 0.75),
    ("mae", BCE, BIN_P, BIN_Y, 0.375),
    ("mse", BCE, BIN_P, BIN_Y, 0.1925),
    ("rmse", BCE, BIN_P, BIN_Y, math.sqrt(0.1925)),
    ("accuracy", SPARSE, MC_P, MC_Y, 0.6),
    ("precision", SPARSE, MC_P, MC_Y, (0.5 + 1.0 + 0.0) / 3),  # macro over classes
    ("recall", SPARSE, MC_P, MC_Y, (1.0 + 2 / 3 + 0.0) / 3),
    ("f1", SPARSE, MC_P, MC_Y, (2 / 3 + 0.8 + 0.0) / 3),
    ("accuracy", CCE, MC_P, np.eye(3)[MC_Y], 0.6),
    ("recall", CCE, MC_P, np.eye(3)[MC_Y], (1.0 + 2 / 3 + 0.0) / 3),
    ("mae", SPARSE, MC_P, MC_Y, float(np.abs(MC_P - np.eye(3)[MC_Y]).mean())),
    ("mae", MSE, np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]]), 1.5),
    ("rmse", MSE, np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]]), math.sqrt(2.5)),
]


@pytest.mark.parametrize(("name", "loss", "probs", "targets", "expected"), CASES, ids=[f"{c[0]}-{c[1].type}" for c in CASES])
def test_metric_value(name: str, loss: ir.Loss, probs: np.ndarray, targets: np.ndarray, expected: float) -> None:
    assert compute_metrics((name,), loss, probs, targets)[name] == pytest.approx(expected, abs=1e-12)


def brute_force_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    pairs = list(itertools.product(scores[positive], scores[~positive]))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auc_counts_ties_as_half() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=40) / 4  # many ties
    truth = rng.uniform(size=40) > 0.5
    value = compute_metrics(("auc",), BCE, scores[:, None], truth[:, None].astype(float))["auc"]
    assert value == pytest.approx(brute_force_auc(scores, truth), abs=1e-12)


def test_multiclass_auc_is_the_macro_one_vs_rest() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=30)
    labels = rng.integers(0, 3, size=30)
    expected = np.mean([brute_force_auc(probs[:, c], labels == c) for c in range(3)])
    assert compute_metrics(("auc",), SPARSE, probs, labels)["auc"] == pytest.approx(expected, abs=1e-12)


def test_auc_with_one_class_is_nan() -> None:
    assert math.isnan(compute_metrics(("auc",), BCE, BIN_P, np.ones((4, 1)))["auc"])


def test_masked_steps_are_excluded() -> None:
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.9, 0.1]]])  # the last step is padding
    labels = np.array([[0, 1, 1]])
    mask = np.array([[True, True, False]])
    assert compute_metrics(("accuracy",), SPARSE, probs, labels, mask)["accuracy"] == 1.0
    assert compute_metrics(("accuracy",), SPARSE, probs, labels)["accuracy"] == pytest.approx(2 / 3)
