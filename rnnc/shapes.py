"""Shape inference over the spec's layers, each kind's rule read from its definition.

`infer_node` takes a layer and the shape flowing into it and returns the `Node`, its
output shape and parameters from the kind's `output_shape` and `params` (rnnc.layers),
or raises `ShapeMismatch` with a message that names both shapes. This module adds
what no one kind knows: token ids go into an embedding alone, lengths end with the
time axis, and why a sequence layer got a vector. Shapes include the batch axis:
`(batch, time, features)` for sequences, `(batch, features)` after the time axis is
gone, `(batch, time)` for token ids.
"""

from __future__ import annotations

from . import ir
from .ir import Shape
from .layers.base import ShapeMismatch, show, show_dims  # noqa: F401  (re-exported)


def infer_node(index: int, layer: ir.Layer, shape: Shape, masked: bool) -> ir.Node:
    """The node for `layer` at `index` given its input `shape` (batch axis included)."""
    out = layer.output_shape(shape)
    return ir.Node(index, layer, shape, out, tuple(layer.params(f"layers.{index}", shape)), masked)


def _check_tokens(layer: ir.Layer, shape: Shape, tokens: bool, first: bool) -> None:
    """Token ids go into an embedding and nothing else takes them: both are rank 2, so
    the shape alone cannot tell ids `[batch, time]` from features `[batch, features]`."""
    if tokens and not isinstance(layer, ir.Embedding):
        raise ShapeMismatch(
            f"expects float features, got token ids {show(shape)} (input dtype int64); start with an embedding layer"
        )
    if not tokens and isinstance(layer, ir.Embedding):
        if first and len(shape) == 3:  # float [timesteps, features] straight from the input
            steps = "null" if shape[1] == ir.TIME else shape[1]
            raise ShapeMismatch(
                f"expects token ids [timesteps], got float input {show(shape)}; "
                f"for token ids set input.dtype: int64 and input.shape: [{steps}]"
            )
        raise ShapeMismatch(f"expects token ids [timesteps] (input dtype int64), got {show(shape)}")


def _lost_time_axis(nodes: list[ir.Node]) -> str:
    """Why a layer that wants a sequence got a vector, when a recurrent layer without
    `return_sequences` took the time axis away (Keras users stack LSTMs this way)."""
    dropped = next((n for n in reversed(nodes) if len(n.input_shape) == 3 and len(n.output_shape) == 2), None)
    if dropped is None or not isinstance(dropped.layer, ir.Recurrent):
        return ""
    return (f"; the previous {dropped.layer.kind} returns only its last step; "
            f"set return_sequences: true on layers[{dropped.index}]")


def infer_nodes(input_: ir.Input, layers: list[ir.Layer]) -> tuple[list[ir.Node], list[tuple[int, str]]]:
    """Every node that can be inferred, and `(layer index, message)` for each that cannot.

    Inference stops at the first mismatch: later shapes would only repeat it.
    """
    shape = input_.tensor_shape
    masked = input_.variable_length
    tokens = input_.dtype == "int64"  # ids until an embedding: [batch, time] is not [batch, features]
    nodes: list[ir.Node] = []
    for index, layer in enumerate(layers):
        if isinstance(layer, ir.Embedding):
            masked = masked or layer.mask_zero
        try:
            _check_tokens(layer, shape, tokens, first=not nodes)
            node = infer_node(index, layer, shape, masked)
        except ShapeMismatch as mismatch:
            hint = _lost_time_axis(nodes) if layer.takes_sequences and len(shape) == 2 else ""
            return nodes, [(index, f"{mismatch}{hint}")]
        tokens = False
        nodes.append(node)
        shape = node.output_shape
        if len(shape) != 3:
            masked = False  # the time axis is gone, and with it the lengths
    return nodes, []
