"""Each layer kind lowered to ONNX: `lower_node` dispatches, and the non-recurrent
kinds (embedding, dense, layer_norm, conv1d, pool) are lowered here.

Each function takes the incoming `Flow` and returns the outgoing one. Padded steps
never change a real result, as in the torch backend: per-step layers cannot mix steps;
conv1d zeroes padded inputs first, so they look like the zero padding a sequence gets
when it runs alone, and maps lengths through `Conv1D.out_length`; pool reduces over
real steps only, and a sequence of length 0 pools to zeros (when streaming, pool `last`
keeps the last real step of an earlier chunk instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_never

import numpy as np
from onnx import TensorProto

from rnnc import ir

from .activations import activation
from .builder import GraphBuilder
from .flow import Flow, state_names, state_size, zero_padding
from .masking import keep_ids, lower_masking
from .recurrent import lower_recurrent


def lower_node(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow, time_major: bool,
               streaming: bool) -> Flow:
    """`node` lowered onto `flow`: the one place that maps each layer kind to its ONNX
    lowering (`time_major`: whether a sequence made here is best made time-major)."""
    layer = node.layer
    match layer:
        case ir.Embedding():
            return lower_embedding(g, node, weights, flow, time_major)
        case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
            return lower_recurrent(g, node, weights, flow, streaming)
        case ir.Dense():
            return lower_dense(g, node, weights, flow)
        case ir.Dropout():
            return flow  # nothing of dropout remains at inference
        case ir.Activation():
            return flow.to(activation(g, flow.tensor, layer.activation, f"layers.{node.index}.{layer.activation}"))
        case ir.LayerNorm():
            return lower_layer_norm(g, node, weights, flow)
        case ir.Conv1D():
            return lower_conv1d(g, node, weights, flow, time_major)
        case ir.Pool():
            return lower_pool(g, node, flow, streaming)
        case ir.Masking():
            return lower_masking(g, node, flow)
        case ir.Concatenate() | ir.Add() | ir.Multiply() | ir.Average() | ir.RepeatVector() | ir.Attention() | ir.Normalization():
            raise AssertionError(f"{layer.kind} is a kind of graphs: rnnc_onnx.graph lowers it")
        case _:
            assert_never(layer)


def unstreamable(node: ir.Node) -> str:
    """Why `node` cannot run chunk by chunk with its state carried, or "": the kind's
    own rule (`streaming_problem`, which `rnnc check` reads too)."""
    reason = node.layer.streaming_problem()
    if not reason:
        return ""
    if isinstance(node.layer, ir.Recurrent):  # say which direction needs the future
        reason = "a bidirectional layer cannot stream, its backward direction needs the whole sequence"
    return f"{reason}; set export.streaming: false to export it"


def lower_embedding(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], ids: Flow, time_major: bool) -> Flow:
    """Token ids `[batch, time]` -> vectors; transposing the ids (cheap integers) gives a
    time-major result directly when a recurrent layer comes next. One id per sample (a
    graph's int64 `[]` input, `[batch]`) -> `[batch, dim]`."""
    table = g.weight(f"layers.{node.index}.weight", weights[f"layers.{node.index}.weight"])
    if ids.rank == 1:
        return Flow(g.op("Gather", [table, ids.tensor], f"layers.{node.index}.out", axis=0), 2)
    assert isinstance(node.layer, ir.Embedding)
    if node.layer.mask_zero == "anywhere":
        ids = keep_ids(g, ids, f"layers.{node.index}.mask")
    tokens = g.op("Transpose", [ids.tensor], "ids.time_major", perm=[1, 0]) if time_major else ids.tensor
    vectors = g.op("Gather", [table, tokens], f"layers.{node.index}.out", axis=0)
    return Flow(vectors, 3, time_major, ids.lengths)


def lower_dense(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow) -> Flow:
    layer = node.layer
    assert isinstance(layer, ir.Dense)
    hint = f"layers.{node.index}"
    weight = weights[f"{hint}.weight"]  # [units, features]
    bias = g.weight(f"{hint}.bias", weights[f"{hint}.bias"]) if layer.use_bias else None
    if flow.rank == 2:
        y = g.op("Gemm", [flow.tensor, g.weight(f"{hint}.weight", weight), *([bias] if bias else [])], hint, transB=1)
    else:  # per timestep: MatMul broadcasts over the leading axes, in either layout
        y = g.op("MatMul", [flow.tensor, g.weight(f"{hint}.weight.T", weight.T)], hint)
        if bias:
            y = g.op("Add", [y, bias], hint)
    return flow.to(activation(g, y, layer.activation, f"{hint}.{layer.activation}"))


def lower_layer_norm(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow) -> Flow:
    layer = node.layer
    assert isinstance(layer, ir.LayerNorm)
    hint = f"layers.{node.index}"
    scale = g.weight(f"{hint}.weight", weights[f"{hint}.weight"])
    shift = g.weight(f"{hint}.bias", weights[f"{hint}.bias"])
    return flow.to(g.op("LayerNormalization", [flow.tensor, scale, shift], hint, axis=-1, epsilon=layer.eps))


def lower_conv1d(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow, time_major: bool) -> Flow:
    """A convolution over time; ONNX's Conv wants `[batch, features, time]`."""
    layer = node.layer
    assert isinstance(layer, ir.Conv1D)
    hint = f"layers.{node.index}"
    flow = zero_padding(g, flow)
    channels_first = g.op("Transpose", [flow.tensor], f"{hint}.ncw", perm=[1, 2, 0] if flow.time_major else [0, 2, 1])
    kernel = g.weight(f"{hint}.weight", weights[f"{hint}.weight"])  # [filters, features, k], as ONNX wants
    bias = g.weight(f"{hint}.bias", weights[f"{hint}.bias"])
    conv_inputs = [channels_first, kernel, bias]
    lengths = flow.lengths
    if layer.padding == "valid":
        y = g.op("Conv", conv_inputs, hint, strides=[layer.stride], pads=[0, 0])
    elif lengths is None or layer.stride == 1:
        # SAME_UPPER is TensorFlow's split, extra step on the right; with stride 1 the
        # left pad is (k - 1) // 2 whatever the length, so padding cannot leak in.
        y = g.op("Conv", conv_inputs, hint, strides=[layer.stride], auto_pad="SAME_UPPER")
    else:
        y = _same_per_sequence(g, layer, conv_inputs, lengths, hint)
    if lengths is not None:
        lengths = _out_lengths(g, layer, lengths, hint)
    out = g.op("Transpose", [y], f"{hint}.out", perm=[2, 0, 1] if time_major else [0, 2, 1])
    out = activation(g, out, layer.activation, f"{hint}.{layer.activation}")
    return Flow(out, 3, time_major, lengths)


def _out_lengths(g: GraphBuilder, layer: ir.Conv1D, lengths: str, hint: str) -> str:
    """`Conv1D.out_length` on int64 lengths (ONNX's integer Div truncates, so the
    numerators are kept >= 0 where the result matters and clamped after)."""
    stride = g.const(layer.stride, scalar=True)
    if layer.padding == "same":  # ceil(L / s)
        return g.op("Div", [g.op("Add", [lengths, g.const(layer.stride - 1, scalar=True)], f"{hint}.len"), stride], f"{hint}.lengths")
    shifted = g.op("Add", [lengths, g.const(layer.stride - layer.kernel_size, scalar=True)], f"{hint}.len")
    return g.op("Max", [g.op("Div", [shifted, stride], f"{hint}.len"), g.const(0, scalar=True)], f"{hint}.lengths")


def _same_per_sequence(g: GraphBuilder, layer: ir.Conv1D, conv_inputs: list[str], lengths: str, hint: str) -> str:
    """`same` padding with stride > 1 and lengths: TensorFlow's left pad depends on each
    sequence's own length, so convolve at stride 1 with the widest left pad and gather
    each sequence's strided steps at its own offset (what the torch backend computes
    by grouping rows)."""
    k, s = layer.kernel_size, layer.stride
    widest = (k - 1) // 2  # the largest left pad any length gets
    dense = g.op("Conv", conv_inputs, f"{hint}.stride1", strides=[1], pads=[widest, k - 1])
    # left_i = max((ceil(L_i / s) - 1) * s + k - L_i, 0) // 2
    out_len = g.op("Div", [g.op("Add", [lengths, g.const(s - 1, scalar=True)], f"{hint}.ceil"), g.const(s, scalar=True)], f"{hint}.ceil")
    covered = g.op("Mul", [out_len, g.const(s, scalar=True)], f"{hint}.covered")
    total = g.op("Sub", [covered, lengths], f"{hint}.pad")
    total = g.op("Max", [g.op("Add", [total, g.const(k - s, scalar=True)], f"{hint}.pad"), g.const(0, scalar=True)], f"{hint}.pad")
    left = g.op("Div", [total, g.const(2, scalar=True)], f"{hint}.left")
    offset = g.op("Sub", [g.const(widest, scalar=True), left], f"{hint}.offset")  # [B]
    # output steps of the batch: ceil(T / s), T = the input's time axis
    steps = g.time_steps(conv_inputs[0], 2)
    out_steps = g.op("Div", [g.op("Add", [steps, g.const(s - 1, scalar=True)], f"{hint}.steps"), g.const(s, scalar=True)], f"{hint}.steps")
    starts = g.op("Range", [g.const(0, scalar=True), out_steps, g.const(1, scalar=True)], f"{hint}.starts")
    starts = g.op("Mul", [starts, g.const(s, scalar=True)], f"{hint}.starts")  # [T']
    index = g.op("Add", [starts, g.op("Unsqueeze", [offset, g.const([1])], f"{hint}.offset")], f"{hint}.index")  # [B, T']
    index = g.op("Unsqueeze", [index, g.const([1])], f"{hint}.index")  # [B, 1, T']
    index = g.op("Expand", [index, g.const([1, layer.filters, 1])], f"{hint}.index")
    return g.op("GatherElements", [dense, index], hint, axis=2)


def lower_pool(g: GraphBuilder, node: ir.Node, flow: Flow, streaming: bool = False) -> Flow:
    layer = node.layer
    assert isinstance(layer, ir.Pool)
    hint = f"layers.{node.index}"
    if layer.mode == "last" and streaming:
        return _streaming_last(g, node, flow)
    axis = flow.time_axis
    x = flow.tensor
    if flow.lengths is None:
        match layer.mode:
            case "last":
                y = g.op("Gather", [x, g.const(-1, scalar=True)], hint, axis=axis)
            case "mean":
                y = g.op("ReduceMean", [x, g.const([axis])], hint, keepdims=0)
            case "max":
                y = g.op("ReduceMax", [x, g.const([axis])], hint, keepdims=0)
            case _:
                assert_never(layer.mode)
        return Flow(y, 2)
    lengths = flow.lengths
    zero = g.const(0.0, dtype="float32", scalar=True)
    match layer.mode:
        case "last":
            y = _last_real_step(g, node, flow)
        case "mean":
            real = zero_padding(g, flow).tensor
            total = g.op("ReduceSum", [real, g.const([axis])], f"{hint}.sum", keepdims=0)
            count = g.op("Max", [lengths, g.const(1, scalar=True)], f"{hint}.count")
            count = g.op("Cast", [g.op("Unsqueeze", [count, g.const([1])], f"{hint}.count")], f"{hint}.count", to=TensorProto.FLOAT)
            return Flow(g.op("Div", [total, count], hint), 2)
        case "max":
            mask = g.step_mask(x, lengths, flow.time_major)
            lowest = g.const(-np.inf, dtype="float32", scalar=True)
            y = g.op("ReduceMax", [g.op("Where", [mask, x, lowest], f"{hint}.real"), g.const([axis])], f"{hint}.max", keepdims=0)
        case _:
            assert_never(layer.mode)
    return Flow(g.op("Where", [g.nonempty(lengths, 2), y, zero], hint), 2)


def _streaming_last(g: GraphBuilder, node: ir.Node, flow: Flow) -> Flow:
    """Pool `last` in a streaming graph: the chunk's last real step, carried as state so
    a sequence with no real step in a chunk keeps the value of its last one."""
    (name,) = state_names(node)
    state_in = g.add_input(name, TensorProto.FLOAT, ["batch", state_size(node)])
    if flow.lengths is None:
        y = g.op("Gather", [flow.tensor, g.const(-1, scalar=True)], f"{name}.next", names=[f"{name}.next"], axis=flow.time_axis)[0]
    else:
        picked = _last_real_step(g, node, flow)
        y = g.op("Where", [g.nonempty(flow.lengths, 2), picked, state_in], f"{name}.next", names=[f"{name}.next"])[0]
    g.add_output(y, TensorProto.FLOAT, ["batch", state_size(node)])
    return Flow(y, 2)


def _last_real_step(g: GraphBuilder, node: ir.Node, flow: Flow) -> str:
    """Each sequence's step `length - 1` (step 0 when empty, zeroed by the caller)."""
    assert flow.lengths is not None
    features = node.input_shape[-1]
    hint = f"layers.{node.index}"
    index = g.op("Max", [g.op("Sub", [flow.lengths, g.const(1, scalar=True)], f"{hint}.index"), g.const(0, scalar=True)], f"{hint}.index")
    shape = [1, -1, 1] if flow.time_major else [-1, 1, 1]
    index = g.op("Reshape", [index, g.const(shape)], f"{hint}.index")
    index = g.op("Expand", [index, g.const([1, 1, features])], f"{hint}.index")
    picked = g.op("GatherElements", [flow.tensor, index], f"{hint}.picked", axis=flow.time_axis)
    return g.op("Squeeze", [picked, g.const([flow.time_axis])], f"{hint}.last")
