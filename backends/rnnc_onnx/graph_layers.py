"""The kinds of graphs (spec version 2) lowered to plain ONNX operators: the merges
(concatenate, add, multiply, average), repeat_vector, attention and normalization.

Each function takes the flows of the values the node reads (`node.sources`, its main
input first) and returns the outgoing one. Merged sequences share one time axis and one
lengths (the core checks it), so they are only brought into one layout; repeat_vector
`like:` takes the like's time axis, layout and lengths. Attention works batch-major:
scores `[batch, Tq, Tv]` (a vector query is a sequence of one step), a softmax over the
value's real steps only (padded steps get exactly zero weight, `Where`, never a
multiplication by a mask), and a value with no real step gives zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import assert_never

import numpy as np

from rnnc import ir
from rnnc.layers.normalization import NORMALIZATION_EPSILON

from .builder import GraphBuilder
from .flow import Flow, in_layout, zero_padding


def lower_merge(g: GraphBuilder, node: ir.Node, flows: Sequence[Flow]) -> Flow:
    """concatenate (last axis), add, multiply, average, element by element."""
    layer = node.layer
    hint = f"layers.{node.index}"
    first = flows[0]
    tensors = [in_layout(g, f, first.time_major).tensor for f in flows]
    padded = [f.zero_padded for f in flows]
    match layer:
        case ir.Concatenate():
            y = g.op("Concat", tensors, hint, axis=-1)
            zero_padded = all(padded)
        case ir.Add():
            y = g.op("Sum", tensors, hint)
            zero_padded = all(padded)
        case ir.Multiply():
            y = tensors[0]
            for other in tensors[1:]:
                y = g.op("Mul", [y, other], hint)
            zero_padded = any(padded)
        case ir.Average():
            total = g.op("Sum", tensors, f"{hint}.sum")
            y = g.op("Div", [total, g.const(float(len(tensors)), dtype="float32", scalar=True)], hint)
            zero_padded = all(padded)
        case _:
            raise AssertionError(f"not a merge: {layer}")
    return Flow(y, first.rank, first.time_major, first.lengths, zero_padded)


def lower_repeat_vector(g: GraphBuilder, node: ir.Node, flows: Sequence[Flow]) -> Flow:
    """`[batch, F]` -> `[batch, n, F]`, or over the time axis of `like` (and its lengths)."""
    layer = node.layer
    assert isinstance(layer, ir.RepeatVector)
    hint = f"layers.{node.index}"
    vector = flows[0].tensor
    if not layer.like:
        column = g.op("Unsqueeze", [vector, g.const([1])], f"{hint}.column")
        return Flow(g.op("Expand", [column, g.const([1, layer.n, 1])], hint), 3)
    like = flows[1]
    steps = g.op("Shape", [like.tensor], f"{hint}.steps", start=like.time_axis, end=like.time_axis + 1)
    if like.time_major:  # [1, B, F] over [T, 1, 1]
        shape = g.op("Concat", [steps, g.const([1, 1])], f"{hint}.shape", axis=0)
    else:  # [B, 1, F] over [1, T, 1]
        shape = g.op("Concat", [g.const([1]), steps, g.const([1])], f"{hint}.shape", axis=0)
    column = g.op("Unsqueeze", [vector, g.const([like.time_axis])], f"{hint}.column")
    return Flow(g.op("Expand", [column, shape], hint), 3, like.time_major, like.lengths)


def lower_normalization(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow) -> Flow:
    """(x - mean) / max(sqrt(variance), 1e-7), the divisor computed here in float32."""
    hint = f"layers.{node.index}"
    mean = g.weight(f"{hint}.mean", weights[f"{hint}.mean"])
    std = np.maximum(np.sqrt(weights[f"{hint}.variance"].astype(np.float32)), np.float32(NORMALIZATION_EPSILON))
    centred = g.op("Sub", [flow.tensor, mean], f"{hint}.centred")
    return flow.to(g.op("Div", [centred, g.weight(f"{hint}.std", std)], hint))


def lower_attention(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flows: Sequence[Flow]) -> Flow:
    """A weighted mean of the value's steps: the query's shape, the value's last axis."""
    layer = node.layer
    assert isinstance(layer, ir.Attention)
    hint = f"layers.{node.index}"
    value = in_layout(g, zero_padding(g, flows[0]), time_major=False)  # [B, Tv, dv]; junk past lengths cannot leak
    query: Flow | None = in_layout(g, flows[1], time_major=False) if layer.query else None
    # The query as [B, Tq, dq] (a vector: Tq = 1); the learned query of pooling as [1, 1, dv].
    if query is None:
        q = g.weight(f"{hint}.query", weights[f"{hint}.query"].reshape(1, 1, -1))
    elif query.rank == 2:
        q = g.op("Unsqueeze", [query.tensor, g.const([1])], f"{hint}.query")
    else:
        q = query.tensor
    keys = g.op("Transpose", [value.tensor], f"{hint}.keys", perm=[0, 2, 1])  # [B, dv, Tv]
    match layer.score:
        case "dot":
            scores = g.op("MatMul", [q, keys], f"{hint}.scores")
            if layer.scale:
                d = _dot_size(node)
                scores = g.op("Div", [scores, g.const(np.sqrt(d), dtype="float32", scalar=True)], f"{hint}.scaled")
        case "general":  # q . W v = (q W) . v
            projected = g.op("MatMul", [q, g.weight(f"{hint}.weight", weights[f"{hint}.weight"])], f"{hint}.projected")
            scores = g.op("MatMul", [projected, keys], f"{hint}.scores")
        case "additive":  # v . tanh(W_q q + W_v v_t), [B, Tq, Tv]
            w_q = g.weight(f"{hint}.weight_query.T", weights[f"{hint}.weight_query"].T)
            w_v = g.weight(f"{hint}.weight_value.T", weights[f"{hint}.weight_value"].T)
            from_query = g.op("Unsqueeze", [g.op("MatMul", [q, w_q], f"{hint}.from_query"), g.const([2])], f"{hint}.from_query")
            from_value = g.op("Unsqueeze", [g.op("MatMul", [value.tensor, w_v], f"{hint}.from_value"), g.const([1])], f"{hint}.from_value")
            hidden = g.op("Tanh", [g.op("Add", [from_query, from_value], f"{hint}.hidden")], f"{hint}.hidden")
            scores = g.op("MatMul", [hidden, g.weight(f"{hint}.v", weights[f"{hint}.v"])], f"{hint}.scores")
        case _:
            assert_never(layer.score)
    attention = _masked_softmax(g, scores, value, hint)
    out = g.op("MatMul", [attention, value.tensor], f"{hint}.out")  # [B, Tq, dv]
    if query is None or query.rank == 2:
        return Flow(g.op("Squeeze", [out, g.const([1])], hint), 2)
    return Flow(out, 3, time_major=False, lengths=query.lengths)


def _dot_size(node: ir.Node) -> int:
    """The size `scale: true` divides dot scores by the root of: the value's last axis
    (the query's too, for score dot)."""
    size = node.input_shapes[0][-1]
    assert isinstance(size, int)
    return size


def _masked_softmax(g: GraphBuilder, scores: str, value: Flow, hint: str) -> str:
    """Softmax over the value's steps (last axis of `scores`), zero at its padded steps;
    all zeros for a value with no real step (whose softmax over -inf alone is NaN, and
    is replaced, never multiplied)."""
    if value.lengths is None:
        return g.op("Softmax", [scores], f"{hint}.weights", axis=-1)
    real = g.step_mask(value.tensor, value.lengths, time_major=False)  # [B, Tv, 1]
    real = g.op("Transpose", [real], f"{hint}.real", perm=[0, 2, 1])  # [B, 1, Tv]
    lowest = g.const(-np.inf, dtype="float32", scalar=True)
    masked = g.op("Where", [real, scores, lowest], f"{hint}.masked")
    weights = g.op("Softmax", [masked], f"{hint}.softmax", axis=-1)
    return g.op("Where", [real, weights, g.const(0.0, dtype="float32", scalar=True)], f"{hint}.weights")
