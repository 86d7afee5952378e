"""The spec's metrics as running sums, so that a pass over data larger than memory keeps
counts instead of every prediction.

`MetricSums.add` takes a batch (or a chunk of batches) of probabilities and targets in
the loss's layout, drops the padded steps of sequence outputs, and folds them into what
each metric needs: sums of absolute and squared errors, counts of right predictions,
per-class counts of true and predicted positives. `values()` then gives what
`rnnc.metrics.compute_metrics` means by each metric (see there), over everything added.
Only `auc` keeps its inputs: it is exact (the Mann-Whitney statistic over every score),
so it holds one score and one truth bit per output unit of each counted prediction.
Sums are float64; split into batches, a mean can differ from the whole array's in its
last bits, never more. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnc import ir

KNOWN = frozenset({"mae", "mse", "rmse", "accuracy", "precision", "recall", "f1", "auc"})


class MetricSums:
    """What `names` need of the predictions added so far, under `loss`'s meanings."""

    def __init__(self, names: Sequence[str], loss: ir.Loss) -> None:
        unknown = [name for name in names if name not in KNOWN]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}")
        self.names, self.loss = tuple(names), loss
        self.multiclass = loss.type in ("categorical_crossentropy", "sparse_categorical_crossentropy")
        self.rows = self.values_seen = 0  # predictions, and their output units
        self.abs_error = self.square_error = 0.0
        self.right = 0  # what accuracy counts as right
        self.tp = self.predicted = self.actual = None  # per class (multiclass) or over every unit, for precision/recall/f1
        self.scores: list[np.ndarray] = []  # auc's inputs: probabilities and truth, [rows, units] each
        self.truth: list[np.ndarray] = []

    def add(self, probs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> MetricSums:
        """Fold in `probs` (the model's outputs, probabilities) against `targets`;
        `mask` `[N, T]` marks the real steps of sequence outputs."""
        if not self.names:
            return self
        if mask is not None:
            probs, targets = probs[mask], targets[mask]
        units = probs.shape[-1]
        kept = probs.reshape(-1, units)  # as given: auc keeps float32 scores as float32 (the same order)
        probs = kept.astype(np.float64)
        if self.loss.type == "sparse_categorical_crossentropy":
            labels = targets.reshape(-1).astype(np.int64)
            dense = np.eye(units)[labels]
        else:
            dense = targets.reshape(-1, units).astype(np.float64)
            labels = dense.argmax(-1)
        self.rows += probs.shape[0]
        self.values_seen += probs.size
        wanted = set(self.names)
        if wanted & {"mae", "mse", "rmse"}:
            error = probs - dense
            self.abs_error += float(np.abs(error).sum())
            self.square_error += float(np.square(error).sum())
        if "accuracy" in wanted:
            self.right += int(self._right(probs, dense, labels).sum())
        if wanted & {"precision", "recall", "f1"}:
            self._count_positives(probs, dense, labels, units)
        if "auc" in wanted:
            self.scores.append(kept.copy())
            self.truth.append(np.eye(units, dtype=bool)[labels] if self.multiclass else dense > 0.5)
        return self

    def _right(self, probs: np.ndarray, dense: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if self.multiclass:
            return probs.argmax(-1) == labels
        if self.loss.is_classification:
            return (probs > 0.5) == (dense > 0.5)
        return probs == dense  # regression: Keras's exact `Accuracy`

    def _count_positives(self, probs: np.ndarray, dense: np.ndarray, labels: np.ndarray, units: int) -> None:
        if self.multiclass:
            predicted = probs.argmax(-1)
            counts = (np.bincount(labels[predicted == labels], minlength=units),
                      np.bincount(predicted, minlength=units), np.bincount(labels, minlength=units))
        else:
            predicted, actual = probs > 0.5, dense > 0.5
            counts = (np.array([np.sum(predicted & actual)]), np.array([np.sum(predicted)]), np.array([np.sum(actual)]))
        if self.tp is None:
            self.tp, self.predicted, self.actual = (c.astype(np.int64) for c in counts)
        else:
            self.tp, self.predicted, self.actual = self.tp + counts[0], self.predicted + counts[1], self.actual + counts[2]

    def values(self) -> dict[str, float]:
        """`{name: value}` over everything added; NaN for every metric of no predictions."""
        return {name: float(self._value(name)) for name in self.names}

    def _value(self, name: str) -> float:
        if self.rows == 0:
            return float("nan")
        match name:
            case "mae":
                return self.abs_error / self.values_seen
            case "mse":
                return self.square_error / self.values_seen
            case "rmse":
                return float(np.sqrt(self.square_error / self.values_seen))
            case "accuracy":
                return self.right / (self.rows if self.multiclass else self.values_seen)
            case "precision" | "recall" | "f1":
                per_class = [_prf(name, int(tp), int(p), int(a)) for tp, p, a in zip(self.tp, self.predicted, self.actual)]
                return float(np.mean(per_class))  # one entry unless multiclass: micro over every unit
            case _:  # auc: one-vs-rest per unit, the mean over the units that have both classes
                scores, truth = np.concatenate(self.scores), np.concatenate(self.truth)
                per_unit = [auc(scores[:, u], truth[:, u]) for u in range(scores.shape[1])]
                defined = [s for s in per_unit if not np.isnan(s)]
                return float(np.mean(defined)) if defined else float("nan")


def _prf(name: str, tp: int, predicted: int, actual: int) -> float:
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    if name == "precision":
        return precision
    if name == "recall":
        return recall
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic, ties counting one half."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    ranks = (starts + (counts + 1) / 2.0)[inverse]  # average rank, 1-based
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
