"""Activations follow Keras 3's definitions, and `logits=True` skips exactly a final
sigmoid or softmax (trailing dropout layers looked through)."""

from __future__ import annotations

import math

import pytest
import torch

import rnnc_torch
from rnnc import ir
from rnnc_torch.activations import activation_fn

X = torch.linspace(-6, 6, 121, dtype=torch.float64).reshape(11, 11)

REFERENCE = {  # elementwise, as Keras 3 documents them
    "linear": lambda v: v,
    "relu": lambda v: max(v, 0.0),
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "tanh": math.tanh,
    "gelu": lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))),  # exact, not the tanh approximation
    "elu": lambda v: v if v > 0 else math.exp(v) - 1,
    "selu": lambda v: 1.0507009873554805 * (v if v > 0 else 1.6732632423543772 * (math.exp(v) - 1)),
    "leaky_relu": lambda v: v if v > 0 else 0.2 * v,  # Keras's slope, not PyTorch's 0.01
    "softplus": lambda v: math.log1p(math.exp(v)),
    "silu": lambda v: v / (1 + math.exp(-v)),
    "hard_sigmoid": lambda v: min(max(v + 3, 0.0), 6.0) / 6,  # Keras 3: relu6(x + 3) / 6
}


def test_every_activation_has_a_definition():
    assert set(REFERENCE) | {"softmax", "log_softmax"} == set(ir.ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_elementwise_activation_matches_keras(name):
    expected = X.clone().apply_(REFERENCE[name])
    torch.testing.assert_close(activation_fn(name)(X), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "reference"), [("softmax", lambda v: v.exp() / v.exp().sum(-1, keepdim=True)), ("log_softmax", lambda v: v - v.exp().sum(-1, keepdim=True).log())])
def test_softmax_acts_on_the_last_axis(name, reference):
    torch.testing.assert_close(activation_fn(name)(X), reference(X))


# (case id, layers, the activation logits=True skips)
LOGIT_CASES = [
    ("dense_sigmoid", [ir.LSTM(4), ir.Dense(1, activation="sigmoid")], "sigmoid"),
    ("dense_softmax_per_step", [ir.GRU(4, return_sequences=True), ir.Dense(3, activation="softmax")], "softmax"),
    ("trailing_activation_softmax", [ir.LSTM(4), ir.Dense(3), ir.Activation("softmax")], "softmax"),
    ("conv_sigmoid", [ir.Conv1D(2, 3, activation="sigmoid")], "sigmoid"),
    ("dense_tanh", [ir.LSTM(4), ir.Dense(1, activation="tanh")], None),
    ("dense_log_softmax", [ir.LSTM(4), ir.Dense(3, activation="log_softmax")], None),
    ("sigmoid_then_dropout", [ir.LSTM(4), ir.Dense(3, activation="sigmoid"), ir.Dropout(0.1), ir.Dropout(0.2)], "sigmoid"),
    ("softmax_then_layer_norm", [ir.LSTM(4), ir.Dense(3, activation="softmax"), ir.LayerNorm()], None),
    ("softmax_not_last", [ir.LSTM(4), ir.Activation("softmax"), ir.Dense(3)], None),
    ("recurrent_last", [ir.LSTM(4)], None),
]


@pytest.mark.parametrize(("layers", "skipped"), [c[1:] for c in LOGIT_CASES], ids=[c[0] for c in LOGIT_CASES])
def test_final_activation_names_what_logits_skips(make_model, layers, skipped):
    assert rnnc_torch.build_module(make_model(layers, (None, 3))).final_activation == skipped


@pytest.mark.parametrize(("layers", "skipped"), [c[1:] for c in LOGIT_CASES], ids=[c[0] for c in LOGIT_CASES])
def test_logits_skip_exactly_the_final_activation(make_model, layers, skipped):
    module = rnnc_torch.build_module(make_model(layers, (None, 3))).eval()
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 4, 2])
    outputs, logits = module(x, lengths), module(x, lengths, logits=True)
    if skipped is None:
        torch.testing.assert_close(logits, outputs, rtol=0, atol=0)
        return
    applied = activation_fn(skipped)(logits)
    if outputs.dim() == 3:  # padded steps are zero in both
        applied = applied * (torch.arange(applied.shape[1])[None, :, None] < lengths[:, None, None])
        assert torch.all(logits[1, 4:] == 0)
    torch.testing.assert_close(applied, outputs, rtol=0, atol=1e-6)
    assert not torch.allclose(logits, outputs)
