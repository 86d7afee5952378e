"""One output's evaluation, gathered a batch at a time: what `rnnc evaluate` reports
without holding the model's outputs or the targets whole.

`OutputSums.add` takes a batch of the model's outputs (probabilities, or logits under
`from_logits`), targets in the loss's layout and, for a per-step output, the mask of
its real steps; it keeps running sums (the loss over counted predictions, the spec's
metrics through `rnnc.metric_sums.MetricSums`, a per-step classifier's sequences right
at every step) and, per sample, only what `--per-sample` and the class report need:
its loss and, for a single-label classifier, its true and predicted class ids. The
numbers are `rnnc.metrics`' over the whole set (the same definitions), to the last bits
of a float64 sum. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnc import ir
from rnnc.metric_sums import MetricSums
from rnnc.metrics import (ClassReport, class_ids, output_probabilities, per_sample, sequences_right, single_label,
                          step_losses)


class OutputSums:
    """The loss, `metrics` and per-sample record of one output under `loss`; with
    `generative` (an output decoded by `feedback:`) also its perplexity."""

    def __init__(self, loss: ir.Loss, metrics: Sequence[str], *, generative: bool = False) -> None:
        self.loss, self.generative = loss, generative
        self.metrics = MetricSums(metrics, loss)
        self.loss_sum, self.counted = 0.0, 0  # over every counted prediction (step)
        self.scored = self.whole = 0  # per-step classifiers: sequences with a counted step, and right at each
        self.per_step = False
        self.units = 0  # the output's, from the first batch
        self.single = False  # a single-label classifier (then class ids are kept)
        self.losses: list[np.ndarray] = []
        self.true: list[np.ndarray] = []
        self.predicted: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []  # each batch's counted predictions
        self.masked = False  # whether some batch had a mask

    def add(self, outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> OutputSums:
        """Fold in one batch; `mask` `[n, T]` marks a per-step output's real steps."""
        per = step_losses(self.loss, outputs, targets)
        if mask is None:
            self.loss_sum += float(per.sum())
            self.counted += per.size
        else:
            self.loss_sum += float((per * mask).sum())
            self.counted += int(mask.sum())
        self.masks.append(np.ones(per.shape, bool) if mask is None else mask)
        self.masked = self.masked or mask is not None
        self.losses.append(per_sample(per, mask))
        probs = output_probabilities(self.loss, outputs)
        self.metrics.add(probs, targets, mask)
        self.per_step = np.ndim(outputs) == 3
        if self.loss.is_classification and self.per_step:
            scored, whole = sequences_right(self.loss, probs, targets, mask)
            self.scored, self.whole = self.scored + scored, self.whole + whole
        if not self.units:
            self.units = probs.shape[-1]
            self.single = single_label(self.loss, self.units)
        if self.single:
            true, predicted = class_ids(self.loss, probs, targets)
            self.true.append(true)
            self.predicted.append(predicted)
        return self

    def mean_loss(self) -> float:
        return self.loss_sum / max(1, self.counted)

    def scores(self) -> dict[str, float]:
        """`{metric: value}`, then `exact_match` (and `perplexity`) of a per-step classifier."""
        scores = self.metrics.values()
        if self.loss.is_classification and self.per_step:
            scores["exact_match"] = self.whole / self.scored if self.scored else float("nan")
            if self.generative:
                scores["perplexity"] = float(np.exp(self.mean_loss()))
        return scores

    def sample_losses(self) -> np.ndarray:
        """`[N]`: each sample's loss, in the order added."""
        return np.concatenate(self.losses)

    def mask(self) -> np.ndarray | None:
        """`[N, T]`: the counted steps of a per-step output, None where every step counts."""
        return np.concatenate(self.masks) if self.masked else None

    def ids(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(true, predicted) class ids `[N]` or `[N, T]` of a single-label classifier."""
        return (np.concatenate(self.true), np.concatenate(self.predicted)) if self.single else None

    def report(self, names: Sequence[str] | None) -> ClassReport | None:
        """The confusion matrix over the counted predictions of a single-label classifier,
        its classes called `names` where there is one per class (else by number)."""
        ids = self.ids()
        if ids is None:
            return None
        count = 2 if self.loss.type == "binary_crossentropy" else self.units
        classes = tuple(names) if names and len(names) == count else tuple(str(i) for i in range(count))
        mask = self.mask()
        return ClassReport.of(*(ids if mask is None else (ids[0][mask], ids[1][mask])), classes)
