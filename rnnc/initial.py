"""Freshly initialised weights in numpy, for exporting a model that was never trained.

In the core, so that every exporting backend draws the same weights without knowing
another backend (`rnnc compile` without `--weights`, for onnx and torch alike).

The same initialisers as the torch backend (Keras's): glorot-uniform input kernels,
orthogonal recurrent kernels, zero biases with an LSTM forget-gate bias of 1, uniform
±0.05 embeddings, layer_norm ones and zeros, each parameter's as its layer kind
declares it (`Param.init`, rnnc.layers). Drawn from one numpy generator seeded with
`training.seed`, in the IR's parameter order, so the same spec gives the same file
every time, without torch. (Not bit-identical to the torch backend's draws.)
"""

from __future__ import annotations

from typing import assert_never

import numpy as np

from rnnc import ir


def initial_weights(model: ir.Model, seed: int | None = None) -> dict[str, np.ndarray]:
    """Every parameter of `model`, named as in the weights file; `seed` defaults to
    the spec's `training.seed`."""
    rng = np.random.default_rng(model.training.seed if seed is None else seed)
    weights: dict[str, np.ndarray] = {}
    for node in model.nodes:
        for param in node.params:
            weights[param.name] = _draw(rng, param).astype(np.float32)
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


def _draw(rng: np.random.Generator, param: ir.Param) -> np.ndarray:
    """`param` drawn with the initialiser its layer kind declares (rnnc.layers)."""
    shape = param.shape
    match param.init:
        case "uniform":
            return rng.uniform(-0.05, 0.05, size=shape)
        case "glorot_uniform":
            return _glorot(rng, shape)
        case "orthogonal":
            return _orthogonal(rng, shape)
        case "ones":
            return np.ones(shape)
        case "zeros":
            return np.zeros(shape)
        case "forget_bias":  # Keras's unit_forget_bias: the f quarter of i, f, g, o
            bias = np.zeros(shape)
            units = shape[0] // 4
            bias[units : 2 * units] = 1.0
            return bias
        case _:
            assert_never(param.init)
