"""The CPU training path's decisions (rnnc_torch.cpu.policy) agree with each other: the
model-level answer the shards read is the per-call answer the recurrent blocks act on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnc import ir
from rnnc_torch.cpu import policy
from rnnc_torch.model import build_module

from tiny_models import tiny_model

LAYERS = {
    "simple_rnn": ir.SimpleRNN(16),
    "relu simple_rnn": ir.SimpleRNN(16, activation="relu"),
    "small lstm": ir.LSTM(32),
    "large lstm": ir.LSTM(128),
    "bidirectional lstm": ir.LSTM(32, bidirectional=True),
    "small gru": ir.GRU(16),
    "large gru": ir.GRU(64),
    "bidirectional gru": ir.GRU(16, bidirectional=True),
}


@pytest.mark.parametrize("rows", [8, 32, 64, 128])
@pytest.mark.parametrize("name", list(LAYERS))
def test_the_model_level_answer_is_the_per_call_answer(name: str, rows: int) -> None:
    model = tiny_model([LAYERS[name], ir.Dense(1, "sigmoid")], shape=(5, 3))
    (rnn,) = [m for m in build_module(model).modules() if isinstance(m, nn.RNNBase)]
    x = torch.zeros(rows, 5, 3)
    assert policy.runs_a_time_loop(model, rows) is policy.applies(rnn, x)
