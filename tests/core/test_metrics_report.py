"""`rnnc.metrics`' per-class report and per-sample losses (what `rnnc evaluate` prints
and writes), against counts worked out by hand and sklearn's conventions."""

from __future__ import annotations

import numpy as np
import pytest

from rnnc import ir
from rnnc.metrics import ClassReport, class_ids, compute_metrics, loss_value, sample_losses, single_label

SPARSE = ir.Loss("sparse_categorical_crossentropy")
BINARY = ir.Loss("binary_crossentropy")


@pytest.mark.parametrize(
    ("true", "predicted", "matrix", "precision", "recall", "f1"),
    [
        # sklearn's classification_report doc example: y_true [0 1 2 2 2], y_pred [0 0 2 2 1]
        ([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], [[1, 0, 0], [1, 0, 0], [0, 1, 2]],
         [0.5, 0.0, 1.0], [1.0, 0.0, 2 / 3], [2 / 3, 0.0, 0.8]),
        # a class never present and never predicted: 0 everywhere (zero_division=0)
        ([0, 0, 1], [0, 1, 1], [[1, 1, 0], [0, 1, 0], [0, 0, 0]],
         [1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [2 / 3, 2 / 3, 0.0]),
    ],
    ids=["sklearn-example", "absent-class"],
)
def test_counts_and_scores(true, predicted, matrix, precision, recall, f1) -> None:
    report = ClassReport.of(np.array(true), np.array(predicted), ("a", "b", "c"))
    assert report.matrix.tolist() == matrix
    assert report.precision == pytest.approx(precision)
    assert report.recall == pytest.approx(recall)
    assert report.f1 == pytest.approx(f1)
    assert report.support.tolist() == [sum(row) for row in matrix]


def test_averages_read_as_sklearns() -> None:
    report = ClassReport.of(np.array([0, 1, 2, 2, 2]), np.array([0, 0, 2, 2, 1]), ("a", "b", "c"))
    averages = report.averages()
    # sklearn prints: macro avg 0.50 0.56 0.49 5, weighted avg 0.70 0.60 0.61 5, accuracy 0.60
    assert averages["macro_avg"] == pytest.approx({"precision": 0.5, "recall": 5 / 9, "f1": 22 / 45, "support": 5})
    assert averages["weighted_avg"] == pytest.approx({"precision": 0.7, "recall": 0.6, "f1": 0.6133333, "support": 5})
    assert report.accuracy == pytest.approx(0.6)
    assert report.as_dict()["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})


def test_the_macro_f1_is_the_f1_metric() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    labels = rng.integers(0, 4, size=200)
    report = ClassReport.of(*class_ids(SPARSE, probs, labels), ("0", "1", "2", "3"))
    metrics = compute_metrics(("f1", "precision", "recall", "accuracy"), SPARSE, probs, labels)
    for name in ("f1", "precision", "recall"):
        assert report.averages()["macro_avg"][name] == pytest.approx(metrics[name]), name
    assert report.accuracy == pytest.approx(metrics["accuracy"])


@pytest.mark.parametrize(
    ("loss", "probs", "targets", "true", "predicted"),
    [
        (BINARY, [[0.2], [0.7], [0.5], [0.9]], [[0.0], [0.0], [1.0], [1.0]], [0, 0, 1, 1], [0, 1, 0, 1]),
        (SPARSE, [[0.1, 0.9], [0.8, 0.2]], [1, 1], [1, 1], [1, 0]),
        (ir.Loss("categorical_crossentropy"), [[0.1, 0.2, 0.7]], [[0.0, 1.0, 0.0]], [1], [2]),
    ],
    ids=["binary-at-0.5", "sparse", "one-hot"],
)
def test_class_ids(loss: ir.Loss, probs, targets, true, predicted) -> None:
    got_true, got_predicted = class_ids(loss, np.array(probs), np.array(targets))
    assert got_true.tolist() == true and got_predicted.tolist() == predicted


@pytest.mark.parametrize(
    ("loss", "units", "single"),
    [(BINARY, 1, True), (BINARY, 3, False), (SPARSE, 5, True), (ir.Loss("categorical_crossentropy"), 2, True),
     (ir.Loss("mse"), 1, False)],
)
def test_which_models_get_a_report(loss: ir.Loss, units: int, single: bool) -> None:
    assert single_label(loss, units) is single


def test_sample_losses_count_real_steps_only() -> None:
    outputs = np.array([[[1.0], [2.0], [9.0]], [[0.0], [0.0], [0.0]]])
    targets = np.zeros_like(outputs)
    mask = np.array([[True, True, False], [True, True, True]])
    mse = ir.Loss("mse")
    assert sample_losses(mse, outputs, targets, mask).tolist() == [2.5, 0.0]
    assert sample_losses(mse, outputs, targets).tolist() == pytest.approx([86 / 3, 0.0])
    # the overall loss weighs steps, not samples: (1 + 4) / 5 real steps
    assert loss_value(mse, outputs, targets, mask) == pytest.approx(1.0)


def test_sample_losses_of_one_prediction_per_sample_average_to_the_loss() -> None:
    probs = np.array([[0.9], [0.2], [0.6]])
    targets = np.array([[1.0], [0.0], [0.0]])
    per = sample_losses(BINARY, probs, targets)
    assert per == pytest.approx([-np.log(0.9), -np.log(0.8), -np.log(0.4)])
    assert per.mean() == pytest.approx(loss_value(BINARY, probs, targets))
