"""Initial weights follow the initialiser each layer kind declares for its parameters
(the `keras` scheme's rules; rnnc.initial maps the other schemes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnc import ir
from rnnc.initial import initial_weights
from rnnc.shapes import infer_nodes


def _model(layers: list[ir.Layer], inp: ir.Input) -> ir.Model:
    nodes, problems = infer_nodes(inp, layers)
    assert not problems
    return ir.Model("m", inp, tuple(nodes), ir.Loss("mse"), ir.Optimizer("adam"), training=ir.Training(initializer="keras"))


# (layer, parameter, what its declared initialiser gives)
CASES = [
    (ir.LSTM(3), "bias_ih", lambda w: np.array_equal(w, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])),
    (ir.GRU(3), "bias_ih", lambda w: not w.any()),
    (ir.LayerNorm(), "weight", lambda w: np.array_equal(w, np.ones(2))),
    (ir.LSTM(3), "weight_hh", lambda w: np.allclose(w.T @ w, np.eye(3), atol=1e-5)),  # orthogonal columns
    (ir.Dense(4), "weight", lambda w: np.abs(w).max() <= np.sqrt(6 / (2 + 4)) and w.std() > 0),
]


@pytest.mark.parametrize(("layer", "param", "holds"), CASES, ids=[f"{c[0].kind}.{c[1]}" for c in CASES])
def test_each_parameter_starts_as_its_kind_declares(layer: ir.Layer, param: str, holds) -> None:
    model = _model([layer], ir.Input((5, 2)))
    assert holds(initial_weights(model)[f"layers.0.{param}"])


def test_the_declaration_alone_decides() -> None:
    model = _model([ir.Dense(3)], ir.Input((5, 2)))
    node = model.nodes[0]
    ones = tuple(dataclasses.replace(p, init="ones") for p in node.params)
    model = dataclasses.replace(model, nodes=(dataclasses.replace(node, params=ones),))
    assert all(np.array_equal(w, np.ones_like(w)) for w in initial_weights(model).values())
