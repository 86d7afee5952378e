"""Freshly initialised weights in numpy, for exporting a model that was never trained.

In the core, so that every exporting backend draws the same weights without knowing
another backend (`rnnc compile` without `--weights`, for onnx and torch alike).

The same initialisers as the torch backend (Keras's): glorot-uniform input kernels,
orthogonal recurrent kernels, zero biases with an LSTM forget-gate bias of 1, uniform
±0.05 embeddings, layer_norm ones and zeros. Drawn from one numpy generator seeded with
`training.seed`, in the IR's parameter order, so the same spec gives the same file
every time, without torch. (Not bit-identical to the torch backend's draws.)
"""

from __future__ import annotations

import numpy as np

from rnnc import ir


def initial_weights(model: ir.Model, seed: int | None = None) -> dict[str, np.ndarray]:
    """Every parameter of `model`, named as in the weights file; `seed` defaults to
    the spec's `training.seed`."""
    rng = np.random.default_rng(model.training.seed if seed is None else seed)
    weights: dict[str, np.ndarray] = {}
    for node in model.nodes:
        for param in node.params:
            short = param.name.rsplit(".", 1)[1]
            weights[param.name] = _draw(rng, node.layer, short, param.shape).astype(np.float32)
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


def _draw(rng: np.random.Generator, layer: ir.Layer, short: str, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(layer, ir.Embedding):
        return rng.uniform(-0.05, 0.05, size=shape)
    if isinstance(layer, ir.LayerNorm):
        return np.ones(shape) if short == "weight" else np.zeros(shape)
    if short.startswith("weight_hh"):
        return _orthogonal(rng, shape)
    if short.startswith("weight"):
        return _glorot(rng, shape)
    bias = np.zeros(shape)
    if isinstance(layer, ir.LSTM) and short.startswith("bias_ih"):
        bias[layer.units : 2 * layer.units] = 1.0  # Keras's unit_forget_bias
    return bias
