"""`did_you_mean`: spelling mistakes, and the names Keras and PyTorch users bring."""

from __future__ import annotations

import pytest

from rnnc import ir
from rnnc.errors import did_you_mean

MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.mark.parametrize(
    ("word", "choices", "hint"),
    [
        ("unit", ("units", "activation"), " (did you mean 'units'?)"),
        ("SimpleRNN", ir.LAYER_KINDS, " (did you mean 'simple_rnn'?)"),
        ("acc", ir.METRICS, " (did you mean 'accuracy'?)"),  # difflib alone: 'auc'
        ("val_acc", MONITORS, " (did you mean 'val_accuracy'?)"),
        ("learning_rate", ("lr", "momentum"), " (did you mean 'lr'?)"),
        ("learningRate", ("lr", "momentum"), " (did you mean 'lr'?)"),
        ("hidden_size", ("units", "return_sequences"), " (did you mean 'units'?)"),
        ("CrossEntropyLoss", ir.LOSSES, " (did you mean 'sparse_categorical_crossentropy'?)"),
        ("rnn", ir.LAYER_KINDS, " (did you mean 'simple_rnn'?)"),
        ("acc", ("mae", "mse"), ""),  # the known name is not a choice here, and nothing is close
        ("zzz", ir.METRICS, ""),
    ],
)
def test_did_you_mean(word: str, choices, hint: str) -> None:
    assert did_you_mean(word, choices) == hint
