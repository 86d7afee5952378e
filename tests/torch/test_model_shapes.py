"""The torch module's output shape is the IR's, for every layer kind and option."""

from __future__ import annotations

import pytest
import torch

import rnnc_torch
from rnnc import ir

BATCH = 3
STEPS = 7

# (case id, layers, input shape, input dtype)
CASES = [
    ("simple_rnn", [ir.SimpleRNN(5)], (None, 3), "float32"),
    ("simple_rnn_relu_seq", [ir.SimpleRNN(5, activation="relu", return_sequences=True)], (None, 3), "float32"),
    ("simple_rnn_bidir", [ir.SimpleRNN(5, bidirectional=True)], (STEPS, 3), "float32"),
    ("lstm", [ir.LSTM(4)], (None, 3), "float32"),
    ("lstm_seq_bidir", [ir.LSTM(4, return_sequences=True, bidirectional=True)], (None, 3), "float32"),
    ("lstm_no_bias", [ir.LSTM(4, use_bias=False)], (STEPS, 3), "float32"),
    ("lstm_dropout", [ir.LSTM(4, dropout=0.3)], (None, 3), "float32"),
    ("gru", [ir.GRU(6)], (None, 2), "float32"),
    ("gru_seq_bidir_no_bias", [ir.GRU(6, return_sequences=True, bidirectional=True, use_bias=False)], (None, 2), "float32"),
    ("stack_fusable", [ir.GRU(4, return_sequences=True), ir.GRU(4, return_sequences=True), ir.GRU(4)], (None, 2), "float32"),
    ("stack_mixed", [ir.LSTM(4, return_sequences=True), ir.GRU(5, bidirectional=True)], (None, 2), "float32"),
    ("dense_2d", [ir.LSTM(4), ir.Dense(2, activation="softmax")], (None, 3), "float32"),
    ("dense_3d", [ir.Dense(2, activation="tanh")], (None, 3), "float32"),
    ("dense_no_bias", [ir.LSTM(4), ir.Dense(1, use_bias=False)], (None, 3), "float32"),
    ("dropout", [ir.Dropout(0.5), ir.LSTM(4)], (None, 3), "float32"),
    ("activation", [ir.Activation("gelu")], (STEPS, 3), "float32"),
    ("layer_norm_3d", [ir.LayerNorm(eps=1e-3)], (None, 3), "float32"),
    ("layer_norm_2d", [ir.LSTM(4), ir.LayerNorm()], (None, 3), "float32"),
    ("conv_same", [ir.Conv1D(5, 3)], (None, 3), "float32"),
    ("conv_same_stride2", [ir.Conv1D(5, 3, stride=2)], (None, 3), "float32"),
    ("conv_same_stride3_fixed", [ir.Conv1D(5, 4, stride=3, activation="relu")], (STEPS, 3), "float32"),
    ("conv_valid", [ir.Conv1D(5, 3, padding="valid")], (None, 3), "float32"),
    ("conv_valid_stride2_fixed", [ir.Conv1D(5, 2, stride=2, padding="valid")], (STEPS, 3), "float32"),
    ("conv_then_lstm", [ir.Conv1D(4, 3, stride=2), ir.LSTM(3, return_sequences=True)], (None, 3), "float32"),
    ("pool_last", [ir.Pool("last")], (None, 3), "float32"),
    ("pool_mean", [ir.Pool("mean")], (STEPS, 3), "float32"),
    ("pool_max", [ir.LSTM(4, return_sequences=True), ir.Pool("max")], (None, 3), "float32"),
    ("embedding", [ir.Embedding(11, 4), ir.GRU(3)], (None,), "int64"),
    ("embedding_mask_zero_seq", [ir.Embedding(11, 4, mask_zero=True), ir.LSTM(3, return_sequences=True)], (STEPS,), "int64"),
]


def concrete(model: ir.Model) -> tuple[int, ...]:
    """The IR's output shape for a batch of BATCH sequences of STEPS steps."""
    steps = STEPS
    for node in model.nodes:
        if isinstance(node.layer, ir.Conv1D):
            steps = node.layer.out_length(steps)
    shape = model.output_shape
    return tuple(BATCH if i == 0 else (steps if i == 1 and len(shape) == 3 else d) for i, d in enumerate(shape))  # type: ignore[misc]


def sample_input(model: ir.Model) -> torch.Tensor:
    if model.input.dtype == "int64":
        return torch.randint(1, 11, (BATCH, STEPS))
    return torch.randn(BATCH, STEPS, model.input.shape[-1])  # type: ignore[arg-type]


@pytest.mark.parametrize(("layers", "shape", "dtype"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_output_shape_is_the_ir_shape(make_model, layers, shape, dtype, with_lengths):
    model = make_model(layers, shape, dtype)
    module = rnnc_torch.build_module(model).eval()
    lengths = torch.tensor([STEPS, STEPS - 2, 4]) if with_lengths else None
    out = module(sample_input(model), lengths)
    assert tuple(out.shape) == concrete(model)
    assert out.dtype == torch.float32


@pytest.mark.parametrize(("layers", "shape", "dtype"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_ir_parameter_is_a_module_parameter(make_model, layers, shape, dtype):
    model = make_model(layers, shape, dtype)
    module = rnnc_torch.build_module(model)
    params = module.ir_parameters()
    assert {name: tuple(p.shape) for name, p in params.items()} == {p.name: p.shape for p in model.params}
    assert sum(p.numel() for p in module.parameters()) == model.param_count
