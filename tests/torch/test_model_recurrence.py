"""The recurrent layers compute the documented equations from the IR-named weights.

A plain numpy recurrence reads `ir_state()` in the layout the weights file promises
(PyTorch's; gate order LSTM i,f,g,o, GRU r,z,n with the reset gate after the recurrent
matmul; `_reverse` for the backward direction) and must agree with the module. This
pins the layout the ONNX backend relies on, independently of torch's internals.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rnnc_torch
from rnnc import ir


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def step(layer: ir.Recurrent, w: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = w["weight_ih"] @ x + w.get("bias_ih", 0)
    gh = w["weight_hh"] @ h + w.get("bias_hh", 0)
    match layer:
        case ir.SimpleRNN():
            pre = gx + gh
            return (np.tanh(pre) if layer.activation == "tanh" else np.maximum(pre, 0)), c
        case ir.LSTM():
            i, f, g, o = np.split(gx + gh, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            return sigmoid(o) * np.tanh(c), c
        case ir.GRU():
            xr, xz, xn = np.split(gx, 3)
            hr, hz, hn = np.split(gh, 3)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            n = np.tanh(xn + r * hn)
            return (1 - z) * n + z * h, c
    raise AssertionError(layer)


def reference(layer: ir.Recurrent, state: dict[str, np.ndarray], xs: np.ndarray) -> np.ndarray:
    """`[time, directions * units]` outputs of layer 0 for one unpadded sequence."""
    outputs = []
    for suffix in ("", "_reverse")[: layer.directions]:
        names = [f"{name}{suffix}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        w = {name.removesuffix(suffix): state[f"layers.0.{name}"].astype(np.float64) for name in names if f"layers.0.{name}" in state}
        h = c = np.zeros(layer.units)
        order = range(len(xs)) if not suffix else range(len(xs) - 1, -1, -1)
        out = np.zeros((len(xs), layer.units))
        for t in order:
            h, c = step(layer, w, xs[t], h, c)
            out[t] = h
        outputs.append(out)
    return np.concatenate(outputs, axis=1)


LAYERS = [
    ir.SimpleRNN(4),
    ir.SimpleRNN(4, activation="relu", bidirectional=True),
    ir.LSTM(4),
    ir.LSTM(4, bidirectional=True, use_bias=False),
    ir.GRU(4),
    ir.GRU(4, bidirectional=True),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda l: f"{l.kind}{'_bidir' if l.bidirectional else ''}{'' if l.use_bias else '_nobias'}")
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_recurrence_matches_the_equations(make_model, layer, return_sequences):
    layer = dataclasses.replace(layer, return_sequences=return_sequences)
    module = rnnc_torch.build_module(make_model([layer], (None, 3))).eval()
    state = module.ir_state()
    for name in state:  # non-zero biases, so a misplaced gate would show
        state[name] = np.random.default_rng(len(name)).normal(0, 0.5, state[name].shape).astype(np.float32)
    module.load_ir_state(state)
    xs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    expected = reference(layer, state, xs)
    if not return_sequences:
        units = layer.units
        expected = np.concatenate([expected[-1, :units], expected[0, units:]])
    got = module(torch.from_numpy(xs)[None])[0].detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
