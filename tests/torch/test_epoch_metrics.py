"""An epoch's metrics counted as it goes: outputs folded every few values give what the
whole epoch's outputs give at once, batches of several widths included, and nothing is
held past a flush; a `fold` hook sees every chunk before it is counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnc_torch.epoch_metrics as epoch_metrics
from rnnc import ir
from rnnc.metrics import compute_metrics
from rnnc_torch.epoch_metrics import EpochMetrics

NAMES = ("accuracy", "auc", "f1", "mae")
LOSS = ir.Loss("sparse_categorical_crossentropy")


def softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, -1)


def test_flushing_every_few_values_counts_what_the_whole_epoch_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epoch_metrics, "FLUSH_VALUES", 100)  # a flush every few batches
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 6, 3, generator=generator), torch.randint(0, 3, (8, 6), generator=generator),
                torch.rand(8, 6, generator=generator) < 0.7) for _ in range(9)]
    folded: list[int] = []

    def fold(chunk):
        folded.append(len(chunk[0]))
        return chunk

    counted = EpochMetrics(NAMES, LOSS, softmax, fold)
    for logits, target, mask in batches:
        counted.add(logits, target, mask)
        assert counted.values_held < 100 + logits.numel()  # never more than one batch past the bound
    got = counted.values()
    logits, targets, masks = (torch.cat(parts) for parts in zip(*batches))
    expected = compute_metrics(NAMES, LOSS, softmax(logits).numpy(), targets.numpy(), masks.numpy())
    assert got == pytest.approx(expected, rel=1e-12)
    assert sum(folded) == 72 and len(folded) > 1 and counted.held == []


def test_batches_of_different_widths_are_counted_apart() -> None:
    generator = torch.Generator().manual_seed(1)
    wide, narrow = torch.randn(4, 5, 3, generator=generator), torch.randn(4, 2, 3, generator=generator)
    y_wide, y_narrow = torch.randint(0, 3, (4, 5), generator=generator), torch.randint(0, 3, (4, 2), generator=generator)
    counted = EpochMetrics(("accuracy",), LOSS, softmax)
    counted.add(wide, y_wide, torch.ones(4, 5, dtype=torch.bool))
    counted.add(narrow, y_narrow, torch.ones(4, 2, dtype=torch.bool))
    right = (wide.argmax(-1) == y_wide).sum() + (narrow.argmax(-1) == y_narrow).sum()
    assert counted.values()["accuracy"] == pytest.approx(float(right) / 28)


def test_per_sequence_outputs_without_mask() -> None:
    probs = torch.tensor([[0.9], [0.2], [0.6], [0.4]])
    labels = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    counted = EpochMetrics(("accuracy", "precision"), ir.Loss("binary_crossentropy"), lambda p: p)
    counted.add(probs[:3], labels[:3])
    counted.add(probs[3:], labels[3:])
    assert counted.values() == {"accuracy": 0.5, "precision": 0.5}
    assert np.isnan(EpochMetrics(("auc",), LOSS, softmax).values()["auc"])  # nothing added
