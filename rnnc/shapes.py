"""Shape inference: each layer kind's rule for its output shape and its parameters.

`infer_node` takes a layer and the shape flowing into it and returns the `Node`, or
raises `ShapeMismatch` with a message that names both shapes. Shapes include the batch
axis: `(batch, time, features)` for sequences, `(batch, features)` after the time axis
is gone, `(batch, time)` for token ids.
"""

from __future__ import annotations

from typing import assert_never

from . import ir
from .ir import BATCH, Dim, Param, Shape


class ShapeMismatch(Exception):
    """A layer cannot take the shape it is given; the message follows the layer's label."""


def show(shape: Shape) -> str:
    """Keras-like rendering without the batch axis: `[10, 32]`, `[time, 32]`."""
    return show_dims(shape[1:])


def show_dims(dims: tuple[Dim | None, ...] | list[Dim | None]) -> str:
    """Sizes as a spec writes them: `[null, 3]` (YAML's null, never Python's None)."""
    return "[" + ", ".join("null" if d is None else str(d) for d in dims) + "]"


def _expect_sequence(shape: Shape) -> None:
    if len(shape) != 3:
        raise ShapeMismatch(f"expects input [timesteps, features], got {show(shape)}")


def _time_after_conv(conv: ir.Conv1D, steps: Dim) -> Dim:
    if isinstance(steps, int):
        return conv.out_length(steps)
    if conv.stride == 1 and conv.padding == "same":
        return steps
    if conv.padding == "same":
        return f"ceil({steps}/{conv.stride})"
    return f"({steps}-{conv.kernel_size})//{conv.stride}+1"


def _recurrent_params(prefix: str, layer: ir.Recurrent, features: int) -> list[Param]:
    rows = layer.gates * layer.units
    params: list[Param] = []
    for suffix in ("", "_reverse")[: layer.directions]:
        params.append(Param(f"{prefix}.weight_ih{suffix}", (rows, features)))
        params.append(Param(f"{prefix}.weight_hh{suffix}", (rows, layer.units)))
        if layer.use_bias:
            params.append(Param(f"{prefix}.bias_ih{suffix}", (rows,)))
            params.append(Param(f"{prefix}.bias_hh{suffix}", (rows,)))
    return params


def infer_node(index: int, layer: ir.Layer, shape: Shape, masked: bool) -> ir.Node:
    """The node for `layer` at `index` given its input `shape` (batch axis included)."""
    prefix = f"layers.{index}"
    params: list[Param] = []
    match layer:
        case ir.Embedding():
            if len(shape) != 2:
                raise ShapeMismatch(
                    f"expects token ids [timesteps] (input dtype int64), got {show(shape)}"
                )
            out: Shape = (*shape, layer.dim)
            params.append(Param(f"{prefix}.weight", (layer.vocab_size, layer.dim)))
        case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
            _expect_sequence(shape)
            features = shape[2]
            assert isinstance(features, int)
            params += _recurrent_params(prefix, layer, features)
            out = (*shape[:2], layer.output_size) if layer.return_sequences else (BATCH, layer.output_size)
        case ir.Dense():
            if len(shape) not in (2, 3):
                raise ShapeMismatch(f"expects input [features] or [timesteps, features], got {show(shape)}")
            features = shape[-1]
            assert isinstance(features, int)
            params.append(Param(f"{prefix}.weight", (layer.units, features)))
            if layer.use_bias:
                params.append(Param(f"{prefix}.bias", (layer.units,)))
            out = (*shape[:-1], layer.units)
        case ir.Dropout() | ir.Activation():
            out = shape
        case ir.LayerNorm():
            if len(shape) < 2:
                raise ShapeMismatch(f"expects input with a feature axis, got {show(shape)}")
            features = shape[-1]
            assert isinstance(features, int)
            params += [Param(f"{prefix}.weight", (features,)), Param(f"{prefix}.bias", (features,))]
            out = shape
        case ir.Conv1D():
            _expect_sequence(shape)
            features = shape[2]
            assert isinstance(features, int)
            if isinstance(shape[1], int) and layer.padding == "valid" and shape[1] < layer.kernel_size:
                raise ShapeMismatch(
                    f"with padding 'valid' needs at least kernel_size={layer.kernel_size} "
                    f"timesteps, got {show(shape)}"
                )
            params += [
                Param(f"{prefix}.weight", (layer.filters, features, layer.kernel_size)),
                Param(f"{prefix}.bias", (layer.filters,)),
            ]
            out = (BATCH, _time_after_conv(layer, shape[1]), layer.filters)
        case ir.Pool():
            _expect_sequence(shape)
            out = (BATCH, shape[2])
        case _:
            assert_never(layer)
    return ir.Node(index, layer, shape, out, tuple(params), masked)


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


_TAKES_SEQUENCES = (ir.SimpleRNN, ir.LSTM, ir.GRU, ir.Conv1D, ir.Pool)


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
            hint = _lost_time_axis(nodes) if isinstance(layer, _TAKES_SEQUENCES) and len(shape) == 2 else ""
            return nodes, [(index, f"{mismatch}{hint}")]
        tokens = False
        nodes.append(node)
        shape = node.output_shape
        if len(shape) != 3:
            masked = False  # the time axis is gone, and with it the lengths
    return nodes, []
