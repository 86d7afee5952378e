"""The spec's metrics (and its loss) over a whole set of predictions, with Keras's meanings.

numpy only: the torch trainer computes its per-epoch metrics here from every prediction
of the epoch (so per-step training pays nothing for them and `auc` is exact rather
than a histogram estimate), and `rnnc evaluate` computes the same numbers from an
exported model's outputs without torch. Padded steps of sequence outputs are dropped
first. What a metric means depends on the loss:

- binary_crossentropy: a prediction is positive at p > 0.5; precision, recall and f1
  count every output unit together (micro), auc averages the units that have both
  classes;
- (sparse_)categorical_crossentropy: the class is the argmax; precision, recall, f1 and
  auc (one-vs-rest) are macro averages over the classes;
- regression losses: accuracy is exact equality (Keras's `Accuracy`), and the
  classification metrics read outputs and targets as binary at 0.5.

mae, mse and rmse compare probabilities with one-hot targets for classification.
A metric that has no defined value (auc with one class only) is NaN. `loss_value` is
the spec's loss on the model's outputs, as `rnnc_torch.losses` defines it, and
`sample_losses` the same per sample. `ClassReport` is sklearn's confusion matrix and
classification report for a single-label classifier (one sigmoid unit, or softmax).
`sequence_scores` adds what `rnnc evaluate` reports of a per-step output beside them:
exact match per sequence, and a generative output's perplexity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnc import ir
from rnnc.metric_sums import MetricSums


def compute_metrics(
    names: tuple[str, ...], loss: ir.Loss, probs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """`{name: value}` for `probs` (the model's outputs) against `targets` (the loss's
    layout); `mask` `[N, T]` marks the real steps of sequence outputs. One pass of
    `rnnc.metric_sums.MetricSums`, which adds a batch at a time."""
    return MetricSums(names, loss).add(probs, targets, mask).values()


EPSILON = 1e-7  # Keras's clip on probabilities before a log, as in rnnc_torch.losses


def loss_value(loss: ir.Loss, outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The mean of `loss` for the model's `outputs` (logits when `loss.from_logits`)
    against `targets` (the loss's layout), over the real steps where `mask` is given."""
    per = step_losses(loss, outputs, targets)
    if mask is None:
        return float(per.mean())
    return float((per * mask).sum() / max(1.0, float(mask.sum())))


def sample_losses(loss: ir.Loss, outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """`[N]`: each sample's `loss`, the mean over its real steps for sequence outputs
    (an anomaly score for a regression or autoencoder-like model)."""
    return per_sample(step_losses(loss, outputs, targets), mask)


def per_sample(per: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """`[N]` from `step_losses`' `per`: a sequence's mean over its real steps (`mask`)."""
    if per.ndim == 1:
        return per
    if mask is None:
        return per.reshape(len(per), -1).mean(-1)
    return (per * mask).sum(-1) / np.maximum(1, mask.sum(-1))


def step_losses(loss: ir.Loss, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`loss` per prediction: `[N]`, or `[N, T]` for sequence outputs."""
    out = np.asarray(outputs, dtype=np.float64)
    if loss.from_logits and loss.is_classification:
        out = probabilities_from_logits(out, multiclass=loss.type != "binary_crossentropy")
    match loss.type:
        case "binary_crossentropy":
            p, t = np.clip(out, EPSILON, 1.0 - EPSILON), targets.astype(np.float64)
            per = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p)).mean(-1)
        case "categorical_crossentropy":
            p = np.clip(out / out.sum(-1, keepdims=True), EPSILON, 1.0 - EPSILON)
            per = -(targets * np.log(p)).sum(-1)
        case "sparse_categorical_crossentropy":
            p = np.clip(out, EPSILON, 1.0 - EPSILON)
            per = -np.log(np.take_along_axis(p, targets.astype(np.int64)[..., None], -1))[..., 0]
        case "mse":
            per = np.square(out - targets).mean(-1)
        case "mae":
            per = np.abs(out - targets).mean(-1)
        case "huber":
            error = np.abs(out - targets)
            per = np.where(error <= loss.delta, 0.5 * error**2, loss.delta * (error - 0.5 * loss.delta)).mean(-1)
        case _:
            raise ValueError(f"unknown loss {loss.type!r}")
    return per


def probabilities_from_logits(logits: np.ndarray, multiclass: bool) -> np.ndarray:
    """Softmax over the last axis (one class of several), else a sigmoid per unit."""
    logits = np.asarray(logits, dtype=np.float64)
    if not multiclass:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def output_probabilities(loss: ir.Loss, outputs: np.ndarray) -> np.ndarray:
    """What the metrics read: the model's outputs, made probabilities when they are
    logits (`loss.from_logits`), as the trainer does."""
    if loss.from_logits and loss.is_classification:
        return probabilities_from_logits(outputs, multiclass=loss.type != "binary_crossentropy")
    return np.asarray(outputs)


# --- what `rnnc evaluate` adds for per-step outputs ---------------------------------


def sequence_scores(
    loss: ir.Loss, outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None, *, generative: bool = False
) -> dict[str, float]:
    """`exact_match` of a per-step classifier's `outputs` `[N, T, units]`: the share of
    sequences whose every counted step is right (right as `accuracy` counts a step: the
    argmax, or every unit at 0.5), over the sequences with at least one counted step;
    with `generative` (an output with `feedback:`) also `perplexity`, exp of the mean
    cross-entropy per counted step (the loss, probabilities clipped at `EPSILON`). `{}`
    for regression losses and outputs without a time axis."""
    if not loss.is_classification or np.ndim(outputs) != 3:
        return {}
    scored, whole = sequences_right(loss, output_probabilities(loss, outputs), targets, mask)
    scores = {"exact_match": whole / scored if scored else float("nan")}
    if generative:
        scores["perplexity"] = float(np.exp(loss_value(loss, outputs, targets, mask)))
    return scores


def sequences_right(loss: ir.Loss, probs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> tuple[int, int]:
    """(sequences with a counted step, those right at every counted step) of a per-step
    classifier's probabilities `[N, T, units]`: what `exact_match` divides."""
    if loss.type == "sparse_categorical_crossentropy":
        right = probs.argmax(-1) == targets.reshape(probs.shape[:2])
    elif loss.type == "categorical_crossentropy":
        right = probs.argmax(-1) == targets.argmax(-1)
    else:
        right = ((probs > 0.5) == (targets > 0.5)).all(-1)
    counted = np.ones(right.shape, bool) if mask is None else mask
    scored = counted.any(-1)
    return int(scored.sum()), int((right | ~counted).all(-1)[scored].sum())


# --- the per-class report of `rnnc evaluate` -----------------------------------------


def single_label(loss: ir.Loss, units: int) -> bool:
    """Whether each prediction is one class: softmax over classes, or one sigmoid unit
    (two classes). Several sigmoid units (multi-label) and regression are not."""
    return loss.type in ("categorical_crossentropy", "sparse_categorical_crossentropy") or (
        loss.type == "binary_crossentropy" and units == 1
    )


def class_ids(loss: ir.Loss, probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class ids of a single-label classifier, `[N]` or `[N, T]`: the
    argmax, or for one sigmoid unit 1 at p > 0.5, as `accuracy` counts them."""
    if loss.type == "binary_crossentropy":
        return (targets[..., 0] > 0.5).astype(np.int64), (probs[..., 0] > 0.5).astype(np.int64)
    predicted = probs.argmax(-1)
    if loss.type == "sparse_categorical_crossentropy":
        return targets.reshape(predicted.shape).astype(np.int64), predicted
    return targets.argmax(-1), predicted


@dataclass(frozen=True)
class ClassReport:
    """Counts of (true, predicted) classes and what sklearn's classification_report reads
    from them; a class never predicted (or never present) has precision (recall) 0, as
    sklearn's zero_division=0, so the macro f1 is the `f1` metric."""

    classes: tuple[str, ...]
    matrix: np.ndarray  # [C, C] int64: rows the true class, columns the predicted one

    @classmethod
    def of(cls, true: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> ClassReport:
        n = len(classes)
        matrix = np.bincount(true.reshape(-1) * n + predicted.reshape(-1), minlength=n * n).reshape(n, n)
        return cls(classes, matrix.astype(np.int64))

    @property
    def support(self) -> np.ndarray:
        return self.matrix.sum(1)

    @property
    def precision(self) -> np.ndarray:
        return _ratio(np.diag(self.matrix), self.matrix.sum(0))

    @property
    def recall(self) -> np.ndarray:
        return _ratio(np.diag(self.matrix), self.support)

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / max(1, self.matrix.sum()))

    def averages(self) -> dict[str, dict[str, float]]:
        """`macro_avg` (every class alike) and `weighted_avg` (by support), as sklearn's."""
        support = self.support
        weights = support / max(1, support.sum())
        scores = {"precision": self.precision, "recall": self.recall, "f1": self.f1}
        total = int(support.sum())
        return {
            "macro_avg": {**{k: float(v.mean()) for k, v in scores.items()}, "support": total},
            "weighted_avg": {**{k: float((v * weights).sum()) for k, v in scores.items()}, "support": total},
        }

    def as_dict(self) -> dict[str, object]:
        per_class = {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(self.classes, self.precision, self.recall, self.f1, self.support)
        }
        return {"classes": list(self.classes), "confusion_matrix": self.matrix.tolist(), "per_class": per_class, **self.averages()}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
