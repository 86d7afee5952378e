"""How fresh weights start: each scheme's distribution per parameter, and numpy's draws.

In the core, so that every backend draws from the same distributions without knowing
another backend (the torch backend for training, `rnnc compile` without `--weights`
for onnx and torch alike). A layer's scheme is its own `initializer` setting, else the
spec's `training.initializer` (adaptive by default, chosen by bench/init_study.py
and bench/init_ablation.py):

- keras: glorot-uniform input kernels, orthogonal recurrent kernels, zero biases with an
  LSTM forget-gate bias of 1, uniform +-0.05 embeddings, as each parameter's layer kind
  declares it (`Param.init`, rnnc.layers).
- torch: PyTorch's defaults: every weight and bias of a recurrent layer uniform
  +-1/sqrt(units) (nn.LSTM/GRU/RNN), dense and conv1d weights and biases uniform
  +-1/sqrt(fan_in) (nn.Linear/Conv1d's kaiming_uniform(a=sqrt 5) and bias rule),
  embeddings N(0, 1) (nn.Embedding); attention's matrices as nn.Linear weights, its
  vectors +-1/sqrt(size).
- torch_orthogonal: torch's, with orthogonal recurrent kernels and an LSTM forget-gate
  bias of 1 (`bias_ih`'s forget quarter 1, `bias_hh`'s 0).
- keras_lstm: keras's for LSTM layers, torch's for every other layer; keras_recurrent:
  keras's for every recurrent layer (simple_rnn, lstm, gru), torch's for the others.
- hybrid: keras's, except simple_rnn and gru layers, which take torch's.
- adaptive: hybrid's, and torch's also for a dense layer that is a regression output
  (mse, mae, huber); chosen by bench/init_ablation.py. Embeddings keep Keras's +-0.05,
  also in front of a simple_rnn or gru: torch's N(0, 1) there costs
  specs/gru_stacked_bidir.yaml 9 points (bench/init_embedding.py).

layer_norm's and normalization's ones and zeros are the same under every scheme.
`initial_weights` draws from one numpy generator seeded with `training.seed`, in the
IR's parameter order, so the same spec gives the same file every time, without torch
(not bit-identical to the torch backend's draws, which follow the same `rule`s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, assert_never

import numpy as np

from rnnc import ir


@dataclass(frozen=True)
class Rule:
    """One parameter's distribution: `draw` with `scale` (uniform's bound, normal's
    standard deviation, constant's value), then, for an LSTM bias, the forget gate's
    quarter set to `forget` (None: left as drawn)."""

    draw: Literal["glorot_uniform", "orthogonal", "uniform", "normal", "constant"]
    scale: float = 0.0
    forget: float | None = None


def scheme_of(node: ir.Node, model: ir.Model) -> str:
    """The plain scheme (keras, torch or torch_orthogonal) `node`'s weights start from:
    the layer's own `initializer`, else the spec's, a mixed scheme resolved for this layer."""
    chosen = getattr(node.layer, "initializer", None) or model.training.initializer
    layer = node.layer
    match chosen:
        case "keras_lstm":
            return "keras" if isinstance(layer, ir.LSTM) else "torch"
        case "keras_recurrent":
            return "keras" if isinstance(layer, ir.Recurrent) else "torch"
        case "hybrid":
            return "torch" if isinstance(layer, _TORCH_RECURRENT) else "keras"
        case "adaptive":  # hybrid's, and torch's for a regression output
            return "torch" if isinstance(layer, _TORCH_RECURRENT) or _regression_output(node, model) else "keras"
    return chosen


_TORCH_RECURRENT = ir.SimpleRNN | ir.GRU  # the recurrent kinds hybrid and adaptive start as PyTorch does


def _regression_output(node: ir.Node, model: ir.Model) -> bool:
    """Whether `node` is a dense layer that is an output with a regression loss (mse, mae or huber)."""
    return isinstance(node.layer, ir.Dense) and any(
        out.node == node.index and not out.loss.is_classification for out in model.outputs)


def rule(node: ir.Node, param: ir.Param, scheme: str) -> Rule:
    """How `param` of `node` starts under the plain `scheme` (keras, torch or
    torch_orthogonal; `scheme_of` resolves the mixed ones for a layer)."""
    keras = _keras(param)
    layer = node.layer
    if scheme == "keras" or isinstance(layer, ir.LayerNorm | ir.Normalization):
        return keras
    assert scheme in ("torch", "torch_orthogonal"), scheme
    short = param.name.rsplit(".", 1)[1]
    match layer:
        case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
            torch = Rule("uniform", 1.0 / math.sqrt(layer.units))
            if scheme == "torch":
                return torch
            if short.startswith("weight_hh"):
                return Rule("orthogonal")
            if isinstance(layer, ir.LSTM) and short.startswith("bias"):
                return Rule("uniform", torch.scale, forget=1.0 if short.startswith("bias_ih") else 0.0)
            return torch
        case ir.Embedding():
            return Rule("normal", 1.0)
        case ir.Dense() | ir.Conv1D():
            weight = node.param("weight").shape
            return Rule("uniform", 1.0 / math.sqrt(math.prod(weight[1:])))
        case ir.Attention():
            return Rule("uniform", 1.0 / math.sqrt(param.shape[1] if len(param.shape) == 2 else param.shape[0]))
    return keras


def _keras(param: ir.Param) -> Rule:
    match param.init:
        case "glorot_uniform" | "orthogonal":
            return Rule(param.init)
        case "uniform":
            return Rule("uniform", 0.05)
        case "ones":
            return Rule("constant", 1.0)
        case "zeros":
            return Rule("constant", 0.0)
        case "forget_bias":  # Keras's unit_forget_bias
            return Rule("constant", 0.0, forget=1.0)
        case _:
            assert_never(param.init)


def forget_quarter(rows: int) -> slice:
    """The forget gate's rows of an LSTM bias (gates i, f, g, o)."""
    return slice(rows // 4, 2 * (rows // 4))


def initial_weights(model: ir.Model, seed: int | None = None) -> dict[str, np.ndarray]:
    """Every parameter of `model`, named as in the weights file; `seed` defaults to
    the spec's `training.seed`."""
    rng = np.random.default_rng(model.training.seed if seed is None else seed)
    weights: dict[str, np.ndarray] = {}
    for node in model.nodes:
        scheme = scheme_of(node, model)
        for param in node.params:
            weights[param.name] = _draw(rng, param.shape, rule(node, param, scheme)).astype(np.float32)
    return weights


def _glorot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_out, fan_in = shape[0] * receptive, shape[1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    rows, cols = shape
    flat = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # a uniformly distributed rotation, as torch's orthogonal_
    return q if rows >= cols else q.T


def _draw(rng: np.random.Generator, shape: tuple[int, ...], how: Rule) -> np.ndarray:
    match how.draw:
        case "glorot_uniform":
            value = _glorot(rng, shape)
        case "orthogonal":
            value = _orthogonal(rng, shape)
        case "uniform":
            value = rng.uniform(-how.scale, how.scale, size=shape)
        case "normal":
            value = rng.normal(0.0, how.scale, size=shape)
        case "constant":
            value = np.full(shape, how.scale)
        case _:
            assert_never(how.draw)
    if how.forget is not None:
        value[forget_quarter(shape[0])] = how.forget
    return value
