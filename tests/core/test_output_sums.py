"""One output's evaluation added a batch at a time equals `rnnc.metrics`' one pass over
the whole set: loss, metrics, exact match and perplexity, per-sample losses, class ids
and the confusion matrix, with masked steps and logits."""

from __future__ import annotations

import numpy as np
import pytest

from rnnc import ir
from rnnc.metrics import (ClassReport, class_ids, compute_metrics, loss_value, output_probabilities, sample_losses,
                          sequence_scores)
from rnnc.output_sums import OutputSums

N, T, UNITS = 23, 6, 3
METRICS = ("accuracy", "auc", "f1", "mae")


def whole_set(loss: ir.Loss, outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None) -> dict[str, float]:
    probs = output_probabilities(loss, outputs)
    return {"loss": loss_value(loss, outputs, targets, mask), **compute_metrics(METRICS, loss, probs, targets, mask),
            **sequence_scores(loss, outputs, targets, mask, generative=True)}


@pytest.mark.parametrize("case", ["per-step softmax", "per-step logits", "per-sequence sigmoid", "regression"])
def test_batches_give_the_whole_sets_evaluation(case: str) -> None:
    rng = np.random.default_rng(5)
    mask = None
    if case.startswith("per-step"):
        loss = ir.Loss("sparse_categorical_crossentropy", from_logits=case.endswith("logits"))
        outputs = rng.normal(size=(N, T, UNITS)).astype(np.float32)
        if not loss.from_logits:
            outputs = np.exp(outputs) / np.exp(outputs).sum(-1, keepdims=True)
        targets = rng.integers(0, UNITS, (N, T))
        mask = np.arange(T)[None, :] < rng.integers(0, T + 1, N)[:, None]
    elif case == "per-sequence sigmoid":
        loss, outputs = ir.Loss("binary_crossentropy"), rng.uniform(0.01, 0.99, (N, 1)).astype(np.float32)
        targets = rng.integers(0, 2, (N, 1)).astype(np.float32)
    else:
        loss, outputs = ir.Loss("mse"), rng.normal(size=(N, 2)).astype(np.float32)
        targets = rng.normal(size=(N, 2)).astype(np.float32)
    sums = OutputSums(loss, METRICS, generative=True)
    for start in range(0, N, 5):
        rows = slice(start, start + 5)
        sums.add(outputs[rows], targets[rows], None if mask is None else mask[rows])
    expected = whole_set(loss, outputs, targets, mask)
    got = {"loss": sums.mean_loss(), **sums.scores()}
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    np.testing.assert_allclose(sums.sample_losses(), sample_losses(loss, outputs, targets, mask), rtol=1e-12)
    if case == "regression":
        assert sums.ids() is None and sums.report(None) is None
        return
    true, predicted = class_ids(loss, output_probabilities(loss, outputs), targets)
    np.testing.assert_array_equal(sums.ids()[0], true)
    np.testing.assert_array_equal(sums.ids()[1], predicted)
    counted = (true, predicted) if mask is None else (true[mask], predicted[mask])
    names = ("no", "yes") if case == "per-sequence sigmoid" else ("a", "b", "c")
    np.testing.assert_array_equal(sums.report(names).matrix, ClassReport.of(*counted, names).matrix)
    assert sums.report(names).classes == names
    assert sums.report(("only one",)).classes == tuple(str(i) for i in range(len(names)))  # names that do not fit
