"""Consecutive compatible recurrent layers run as one multi-layer torch module and
compute the same function as one module per layer."""

from __future__ import annotations

import pytest
import torch

import rnnc_torch
from rnnc import ir
from rnnc_torch.cpu.dropout import Dropout

RNN_MODULES = (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU)

# (case id, layers, torch recurrent modules when fused, inter-layer dropout of the first)
CASES = [
    ("lstm_x3", [ir.LSTM(4, return_sequences=True), ir.LSTM(4, return_sequences=True), ir.LSTM(4)], 1),
    ("gru_bidir_x2_seq", [ir.GRU(4, return_sequences=True, bidirectional=True), ir.GRU(4, return_sequences=True, bidirectional=True)], 1),
    ("simple_rnn_relu_x2", [ir.SimpleRNN(4, activation="relu", return_sequences=True), ir.SimpleRNN(4, activation="relu")], 1),
    ("lstm_no_bias_x2", [ir.LSTM(4, return_sequences=True, use_bias=False), ir.LSTM(4, use_bias=False)], 1),
    ("equal_later_dropout", [ir.GRU(4, return_sequences=True, dropout=0.1), ir.GRU(4, return_sequences=True, dropout=0.3), ir.GRU(4, dropout=0.3)], 1),
    ("units_differ", [ir.LSTM(4, return_sequences=True), ir.LSTM(5)], 2),
    ("kinds_differ", [ir.LSTM(4, return_sequences=True), ir.GRU(4)], 2),
    ("direction_differs", [ir.GRU(4, return_sequences=True, bidirectional=True), ir.GRU(4)], 2),
    ("bias_differs", [ir.GRU(4, return_sequences=True), ir.GRU(4, use_bias=False)], 2),
    ("activation_differs", [ir.SimpleRNN(4, return_sequences=True), ir.SimpleRNN(4, activation="relu")], 2),
    ("later_dropout_differs", [ir.GRU(4, return_sequences=True), ir.GRU(4, return_sequences=True, dropout=0.2), ir.GRU(4, dropout=0.3)], 2),
    ("layer_between", [ir.LSTM(4, return_sequences=True), ir.LayerNorm(), ir.LSTM(4)], 2),
    ("two_groups", [ir.LSTM(4, return_sequences=True), ir.LSTM(4, return_sequences=True), ir.GRU(3, return_sequences=True), ir.GRU(3)], 2),
]


def rnn_modules(module: torch.nn.Module) -> list[torch.nn.RNNBase]:
    return [m for m in module.modules() if isinstance(m, RNN_MODULES)]


@pytest.mark.parametrize(("layers", "count"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compatible_layers_fuse(make_model, layers, count):
    model = make_model(layers, (None, 3))
    assert len(rnn_modules(rnnc_torch.build_module(model, fuse=True))) == count
    assert len(rnn_modules(rnnc_torch.build_module(model, fuse=False))) == sum(isinstance(l, ir.Recurrent) for l in layers)


def test_later_layers_dropout_becomes_the_inter_layer_dropout(make_model):
    layers = [ir.GRU(4, return_sequences=True, dropout=0.1), ir.GRU(4, return_sequences=True, dropout=0.3), ir.GRU(4, dropout=0.3)]
    module = rnnc_torch.build_module(make_model(layers, (None, 3)))
    (gru,) = rnn_modules(module)
    assert gru.num_layers == 3 and gru.dropout == 0.3
    input_dropouts = [m.p for m in module.modules() if isinstance(m, Dropout)]
    assert input_dropouts == [0.1]


@pytest.mark.parametrize(("layers", "count"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_fused_computes_the_unfused_function(make_model, layers, count, with_lengths):
    model = make_model(layers, (None, 3))
    fused = rnnc_torch.build_module(model, fuse=True).eval()
    unfused = rnnc_torch.build_module(model, fuse=False).eval()
    unfused.load_ir_state(fused.ir_state())
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 2, 5, 1]) if with_lengths else None
    torch.testing.assert_close(fused(x, lengths), unfused(x, lengths), rtol=0, atol=1e-6)
