"""The spec's activation names as torch functions, with Keras 3's definitions.

Specs use Keras names, so where Keras and PyTorch disagree on a default, Keras wins:
`leaky_relu` has negative slope 0.2 (Keras; PyTorch's default is 0.01), `gelu` is the
exact erf form (Keras's default `approximate=False`), `hard_sigmoid` is Keras 3's
`relu6(x + 3) / 6` (equal to `torch.nn.functional.hardsigmoid`; Keras 2 used
`0.2 * x + 0.5`), `elu` has alpha 1, `softmax` and `log_softmax` act on the last axis.
The ONNX backend must lower each name to the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnc import ir

LEAKY_RELU_SLOPE = 0.2  # Keras's default negative_slope


def activation_fn(name: ir.ActivationName) -> Callable[[Tensor], Tensor]:
    """The function a spec's activation name stands for."""
    match name:
        case "linear":
            return _identity
        case "relu":
            return F.relu
        case "sigmoid":
            return torch.sigmoid
        case "tanh":
            return torch.tanh
        case "softmax":
            return _softmax
        case "log_softmax":
            return _log_softmax
        case "gelu":
            return _gelu
        case "elu":
            return F.elu
        case "selu":
            return F.selu
        case "leaky_relu":
            return _leaky_relu
        case "softplus":
            return F.softplus
        case "silu":
            return F.silu
        case "hard_sigmoid":
            return F.hardsigmoid
        case _:
            assert_never(name)


def _identity(x: Tensor) -> Tensor:
    return x


def _softmax(x: Tensor) -> Tensor:
    return torch.softmax(x, dim=-1)


def _log_softmax(x: Tensor) -> Tensor:
    return torch.log_softmax(x, dim=-1)


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="none")


def _leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, negative_slope=LEAKY_RELU_SLOPE)


class Activation(nn.Module):
    """An activation by its spec name, as a module so it shows in `print(module)`."""

    def __init__(self, name: ir.ActivationName):
        super().__init__()
        self.name = name
        self.fn = activation_fn(name)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name
