"""Metrics as running sums: any split into batches gives what one pass over the whole
set gives, for every metric under every kind of loss, with masked sequence steps and
batches that hold no counted step; and a pass keeps counts, not predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnc import ir
from rnnc.metric_sums import KNOWN, MetricSums

NAMES = tuple(sorted(KNOWN))
N, T, UNITS = 61, 5, 4


def predictions(loss: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequence outputs `[N, T, UNITS]` as float32 probabilities, targets in the loss's
    layout, and a mask with rows of no counted step."""
    logits = rng.normal(size=(N, T, UNITS)).astype(np.float32)
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        labels = rng.integers(0, UNITS, (N, T))
        targets = labels if loss.startswith("sparse") else np.eye(UNITS, dtype=np.float32)[labels]
    elif loss == "binary_crossentropy":
        probs = 1 / (1 + np.exp(-logits))
        targets = rng.integers(0, 2, (N, T, UNITS)).astype(np.float32)
    else:
        probs = np.round(logits, 1)  # some exact hits for regression's accuracy
        targets = np.round(rng.normal(size=(N, T, UNITS)), 1).astype(np.float32)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, N)[:, None]
    return probs.astype(np.float32), targets, mask


@pytest.mark.parametrize("loss", ["binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy", "mse"])
def test_batches_add_up_to_the_whole(loss: str) -> None:
    rng = np.random.default_rng(7)
    probs, targets, mask = predictions(loss, rng)
    whole = MetricSums(NAMES, ir.Loss(loss)).add(probs, targets, mask).values()
    sums = MetricSums(NAMES, ir.Loss(loss))
    cuts = [0, 1, 1, 9, 30, 44, N]  # an empty batch too
    for start, stop in zip(cuts, cuts[1:]):
        sums.add(probs[start:stop], targets[start:stop], mask[start:stop])
    batched = sums.values()
    assert set(batched) == set(NAMES)
    for name in NAMES:
        assert batched[name] == pytest.approx(whole[name], rel=1e-12, abs=1e-15), name
    # counted steps only: the same as the flattened real steps with no mask
    flat = MetricSums(NAMES, ir.Loss(loss)).add(probs[mask], targets[mask]).values()
    for name in NAMES:
        assert flat[name] == pytest.approx(whole[name], rel=1e-12, abs=1e-15), name


def test_mae_and_accuracy_count_every_unit_outside_multiclass() -> None:
    sums = MetricSums(("mae", "accuracy"), ir.Loss("mse"))
    sums.add(np.array([[1.0, 2.0]]), np.array([[1.0, 4.0]])).add(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]))
    assert sums.values() == {"mae": 0.75, "accuracy": 0.5}


def test_nothing_counted_is_nan_and_no_names_is_nothing() -> None:
    empty = MetricSums(("accuracy", "auc"), ir.Loss("binary_crossentropy"))
    empty.add(np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), np.zeros((3, 2), bool))
    assert all(math.isnan(v) for v in empty.values().values())
    assert MetricSums((), ir.Loss("mse")).add(np.ones((2, 1)), np.ones((2, 1))).values() == {}


def test_only_auc_keeps_predictions() -> None:
    rng = np.random.default_rng(1)
    probs, targets, mask = predictions("sparse_categorical_crossentropy", rng)
    counts = MetricSums(("accuracy", "f1", "mae"), ir.Loss("sparse_categorical_crossentropy"))
    for start in range(0, N, 8):
        counts.add(probs[start : start + 8], targets[start : start + 8], mask[start : start + 8])
    assert counts.scores == [] and counts.truth == []
    ranked = MetricSums(("auc",), ir.Loss("sparse_categorical_crossentropy")).add(probs, targets, mask)
    assert sum(s.size for s in ranked.scores) == int(mask.sum()) * UNITS
    assert ranked.scores[0].dtype == np.float32  # kept as given, not widened


def test_an_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric 'top5'"):
        MetricSums(("accuracy", "top5"), ir.Loss("mse"))
