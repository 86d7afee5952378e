"""The spec's activation names as ONNX operators, with the same definitions as the
torch backend (Keras 3's): `leaky_relu` has slope 0.2, `gelu` is the exact erf form,
`hard_sigmoid` is relu6(x + 3) / 6 (HardSigmoid with alpha 1/6, beta 0.5), `elu` has
alpha 1, `softmax` and `log_softmax` act on the last axis, `silu` is x * sigmoid(x).
"""

from __future__ import annotations

import math
from typing import assert_never

from rnnc import ir

from .builder import GraphBuilder

LEAKY_RELU_SLOPE = 0.2  # Keras's default, as in the torch backend
GELU_OPSET = 20  # first opset with a Gelu operator


def activation(g: GraphBuilder, x: str, name: ir.ActivationName, hint: str) -> str:
    """`x` with the activation `name` applied (no node at all for linear)."""
    match name:
        case "linear":
            return x
        case "relu":
            return g.op("Relu", [x], hint)
        case "sigmoid":
            return g.op("Sigmoid", [x], hint)
        case "tanh":
            return g.op("Tanh", [x], hint)
        case "softmax":
            return g.op("Softmax", [x], hint, axis=-1)
        case "log_softmax":
            return g.op("LogSoftmax", [x], hint, axis=-1)
        case "gelu":
            return _gelu(g, x, hint)
        case "elu":
            return g.op("Elu", [x], hint, alpha=1.0)
        case "selu":
            return g.op("Selu", [x], hint)  # ONNX's default alpha and gamma are SELU's constants
        case "leaky_relu":
            return g.op("LeakyRelu", [x], hint, alpha=LEAKY_RELU_SLOPE)
        case "softplus":
            return g.op("Softplus", [x], hint)
        case "silu":
            return g.op("Mul", [x, g.op("Sigmoid", [x], f"{hint}.gate")], hint)
        case "hard_sigmoid":
            return g.op("HardSigmoid", [x], hint, alpha=1.0 / 6.0, beta=0.5)
        case _:
            assert_never(name)


def _gelu(g: GraphBuilder, x: str, hint: str) -> str:
    if g.opset >= GELU_OPSET:
        return g.op("Gelu", [x], hint, approximate="none")
    # 0.5 * x * (1 + erf(x / sqrt(2))), the same exact form, for older opsets
    scaled = g.op("Mul", [x, g.const(1.0 / math.sqrt(2.0), dtype="float32", scalar=True)], f"{hint}.scaled")
    erf = g.op("Erf", [scaled], f"{hint}.erf")
    one_plus = g.op("Add", [erf, g.const(1.0, dtype="float32", scalar=True)], f"{hint}.sum")
    half_x = g.op("Mul", [x, g.const(0.5, dtype="float32", scalar=True)], f"{hint}.half")
    return g.op("Mul", [half_x, one_plus], hint)
