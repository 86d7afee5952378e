"""The spec's metrics over a whole epoch's predictions, with Keras's meanings.

Metrics are computed once per epoch from every prediction of the epoch (the trainer
keeps them on the device and hands them over at the end), so per-step training pays
nothing for them and `auc` is exact rather than a histogram estimate. Padded steps of
sequence outputs are dropped first. What a metric means depends on the loss:

- binary_crossentropy: a prediction is positive at p > 0.5; precision, recall and f1
  count every output unit together (micro), auc averages the units that have both
  classes;
- (sparse_)categorical_crossentropy: the class is the argmax; precision, recall, f1 and
  auc (one-vs-rest) are macro averages over the classes;
- regression losses: accuracy is exact equality (Keras's `Accuracy`), and the
  classification metrics read outputs and targets as binary at 0.5.

mae, mse and rmse compare probabilities with one-hot targets for classification.
A metric that has no defined value (auc with one class only) is NaN.
"""

from __future__ import annotations

import numpy as np

from rnnc import ir


def compute_metrics(
    names: tuple[str, ...], loss: ir.Loss, probs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """`{name: value}` for `probs` (the model's outputs) against `targets` (the loss's
    layout); `mask` `[N, T]` marks the real steps of sequence outputs."""
    if not names:
        return {}
    if mask is not None:
        probs, targets = probs[mask], targets[mask]
    units = probs.shape[-1]
    probs = probs.reshape(-1, units).astype(np.float64)
    if loss.type == "sparse_categorical_crossentropy":
        labels = targets.reshape(-1).astype(np.int64)
        dense = np.eye(units)[labels]
    else:
        dense = targets.reshape(-1, units).astype(np.float64)
        labels = dense.argmax(-1)
    multiclass = loss.type in ("categorical_crossentropy", "sparse_categorical_crossentropy")
    out = {}
    for name in names:
        out[name] = float(_metric(name, loss, multiclass, probs, dense, labels))
    return out


def _metric(name: str, loss: ir.Loss, multiclass: bool, probs: np.ndarray, dense: np.ndarray, labels: np.ndarray) -> float:
    if probs.shape[0] == 0:
        return float("nan")
    match name:
        case "mae":
            return float(np.abs(probs - dense).mean())
        case "mse":
            return float(np.square(probs - dense).mean())
        case "rmse":
            return float(np.sqrt(np.square(probs - dense).mean()))
        case "accuracy":
            if multiclass:
                return float((probs.argmax(-1) == labels).mean())
            if loss.is_classification:
                return float(((probs > 0.5) == (dense > 0.5)).mean())
            return float((probs == dense).mean())
        case "precision" | "recall" | "f1":
            if multiclass:
                predicted = probs.argmax(-1)
                per_class = [_prf(name, predicted == c, labels == c) for c in range(probs.shape[-1])]
                return float(np.mean(per_class))
            return _prf(name, probs > 0.5, dense > 0.5)
        case "auc":
            truth = np.eye(probs.shape[-1], dtype=bool)[labels] if multiclass else dense > 0.5
            scores = [_auc(probs[:, u], truth[:, u]) for u in range(probs.shape[-1])]
            defined = [s for s in scores if not np.isnan(s)]
            return float(np.mean(defined)) if defined else float("nan")
        case _:
            raise ValueError(f"unknown metric {name!r}")


def _prf(name: str, predicted: np.ndarray, actual: np.ndarray) -> float:
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if name == "precision":
        return precision
    if name == "recall":
        return recall
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic, ties counting one half."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    ranks = (starts + (counts + 1) / 2.0)[inverse]  # average rank, 1-based
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
