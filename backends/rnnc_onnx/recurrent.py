"""simple_rnn, lstm and gru lowered to ONNX's native `RNN`, `LSTM` and `GRU` operators.

The weights file holds PyTorch's layout; ONNX wants other gate orders: LSTM i, f, g, o
becomes i, o, f, c, GRU r, z, n becomes z, r, h (torch applies the reset gate after the
recurrent matmul, ONNX's `linear_before_reset=1`), and one bias `B = [Wb, Rb]` per
direction. The gates are reordered here, in numpy, so the graph carries them ready.
The Keras options are the operators' own attributes: a hard sigmoid
`recurrent_activation` is `HardSigmoid` as the gates' activation (alpha 1/6 for
Keras 3's, 0.2 for Keras 2's; beta 0.5), GRU's
`reset_after: false` is `linear_before_reset=0` with its one bias as `Wb` (`Rb` zero).
A bidirectional `merge_mode` other than concat joins the two directions of `Y` (or
`Y_h`) with Add, Mul or their mean.

Variable length rides on `sequence_lens`: onnxruntime stops each sequence at its
length, zero-fills `Y` past it, and `Y_h` is the forward direction's state at the last
real step and the backward direction's output at step 0, which is exactly what
`return_sequences: false` means. With `export.streaming` the initial state is a graph
input and the final state a graph output (`state.<index>.h`, `.c` for LSTM, each
`[batch, units]`; outputs `state.<index>.h.next`, ...). A sequence with no real step in
a chunk keeps its state (onnxruntime would zero it).

In a graph (spec version 2) a layer's initial state may be another layer's final
state (`lower_stateful`): that layer's `Y_h` (and `Y_c`) become this one's `initial_h`
(and `initial_c`); with `sequence_lens`, `Y_h` is already each sequence's state at its
last real step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_never

import numpy as np
from onnx import TensorProto

from rnnc import ir
from rnnc.layers.recurrent import HARD_SIGMOIDS

from .builder import GraphBuilder
from .flow import Flow, in_layout, state_names

# for each ONNX gate block, the torch block it comes from
LSTM_GATES = (0, 3, 1, 2)  # torch i, f, g, o -> ONNX i, o, f, c
GRU_GATES = (1, 0, 2)  # torch r, z, n -> ONNX z, r, h


def _reorder(array: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    blocks = np.split(np.asarray(array, dtype=np.float32), len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def onnx_weights(node: ir.Node, weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`(W, R, B)` in ONNX's layout and gate order for `node`; B is None without bias."""
    layer = node.layer
    order: tuple[int, ...]
    match layer:
        case ir.LSTM():
            order = LSTM_GATES
        case ir.GRU():
            order = GRU_GATES
        case ir.SimpleRNN():
            order = (0,)
        case _:
            raise AssertionError(f"not a recurrent layer: {layer}")
    prefix = f"layers.{node.index}"
    suffixes = ("", "_reverse")[: layer.directions]
    w = np.stack([_reorder(weights[f"{prefix}.weight_ih{s}"], order) for s in suffixes])
    r = np.stack([_reorder(weights[f"{prefix}.weight_hh{s}"], order) for s in suffixes])
    if not layer.use_bias:
        return w, r, None
    def recurrent_bias(s: str) -> np.ndarray:
        name = f"{prefix}.bias_hh{s}"  # absent for a GRU with reset_after false: Keras's one bias
        return _reorder(weights[name], order) if name in weights else np.zeros(r.shape[1], np.float32)

    b = np.stack([np.concatenate([_reorder(weights[f"{prefix}.bias_ih{s}"], order), recurrent_bias(s)]) for s in suffixes])
    return w, r, b


def lower_recurrent(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow, streaming: bool) -> Flow:
    return lower_stateful(g, node, weights, flow, streaming)[0]


def lower_stateful(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flow: Flow, streaming: bool,
                   initial: tuple[str, ...] = (), final: bool = False) -> tuple[Flow, tuple[str, ...]]:
    """The layer's output, and with `final` its final state (`h`, and `c` for LSTM, each
    `[directions, batch, units]` as the operators lay it out, forward first).

    `initial` is another layer's final state (a graph's `initial_state:`), in that
    layout. The final state is each sequence's state after its last real step (the
    operators stop at `sequence_lens`); a sequence with no real step ends in its initial
    state, which onnxruntime would zero.
    """
    layer = node.layer
    assert isinstance(layer, ir.SimpleRNN | ir.LSTM | ir.GRU)
    hint = f"layers.{node.index}"
    x = in_layout(g, flow, time_major=True)
    w, r, b = onnx_weights(node, weights)
    inputs = [
        x.tensor,
        g.weight(f"{hint}.W", w),
        g.weight(f"{hint}.R", r),
        g.weight(f"{hint}.B", b) if b is not None else "",
        g.lengths_i32(x.lengths) if x.lengths is not None else "",
    ]
    states_in = [_state_input(g, name, layer.units) for name in state_names(node)] if streaming else []
    inputs += [g.op("Unsqueeze", [s, g.const([0])], f"{s}.3d") for s in states_in]
    inputs += initial

    attrs: dict[str, object] = {"hidden_size": layer.units}
    if layer.bidirectional:
        attrs["direction"] = "bidirectional"
    op_type: str
    match layer:
        case ir.SimpleRNN():
            op_type = "RNN"
            attrs["activations"] = ["Relu" if layer.activation == "relu" else "Tanh"] * layer.directions
        case ir.LSTM():
            op_type = "LSTM"
            attrs.update(_gate_activations(layer.recurrent_activation, ["Tanh", "Tanh"], layer.directions))
        case ir.GRU():
            op_type = "GRU"
            attrs["linear_before_reset"] = 1 if layer.reset_after else 0
            attrs.update(_gate_activations(layer.recurrent_activation, ["Tanh"], layer.directions))
        case _:
            assert_never(layer)

    need_y = layer.return_sequences
    need_h = not layer.return_sequences or streaming or final
    need_c = (streaming or final) and isinstance(layer, ir.LSTM)
    wanted = [f"{hint}.Y" if need_y else "", f"{hint}.Y_h" if need_h else "", f"{hint}.Y_c" if need_c else ""]
    while not wanted[-1]:
        wanted.pop()
    outputs = g.op(op_type, inputs, hint, outputs=wanted, **attrs)
    y, y_h = outputs[0], outputs[1] if need_h else ""
    y_c = outputs[2] if need_c else ""
    if initial and need_h and x.lengths is not None:
        y_h, y_c = _or_initial(g, (y_h, y_c), initial, x.lengths, hint)
    states = tuple(s for s in (y_h, y_c) if s) if final else ()

    last = ""
    if streaming:
        for state, produced in zip(states_in, (y_h, y_c), strict=False):
            last_state = _state_output(g, state, produced, x.lengths, layer.units)
            last = last or last_state  # h comes first: the layer's output after the chunk
    merged = layer.bidirectional and layer.merge_mode != "concat"
    if layer.return_sequences:
        if merged:  # [T, 2, B, H] -> [T, B, H]
            seq = _merge(g, y, 1, layer.merge_mode, f"{hint}.out")
        elif layer.bidirectional:  # [T, 2, B, H] -> [T, B, 2, H] -> [T, B, 2H]
            swapped = g.op("Transpose", [y], f"{hint}.Y.swapped", perm=[0, 2, 1, 3])
            seq = g.op("Reshape", [swapped, g.const([0, 0, -1])], f"{hint}.out")
        else:
            seq = g.op("Squeeze", [y, g.const([1])], f"{hint}.out")
        return Flow(seq, 3, time_major=True, lengths=x.lengths, zero_padded=x.lengths is not None), states
    if last:
        return Flow(last, 2), states
    if merged:  # [2, B, H] -> [B, H]
        return Flow(_merge(g, y_h, 0, layer.merge_mode, f"{hint}.out"), 2), states
    if layer.bidirectional:  # [2, B, H] -> [B, 2, H] -> [B, 2H]: forward, then backward
        swapped = g.op("Transpose", [y_h], f"{hint}.Y_h.swapped", perm=[1, 0, 2])
        return Flow(g.op("Reshape", [swapped, g.const([0, -1])], f"{hint}.out"), 2), states
    return Flow(g.op("Squeeze", [y_h, g.const([0])], f"{hint}.out"), 2), states


def _gate_activations(gates: str, others: list[str], directions: int) -> dict[str, object]:
    """The `activations` attributes for `gates` (the operators' default is sigmoid, so
    none then): HardSigmoid with its slope and offset as alpha and beta (onnxruntime
    reads one of each per HardSigmoid, in order)."""
    if gates == "sigmoid":
        return {}
    slope, offset = HARD_SIGMOIDS[gates]
    return {"activations": ["HardSigmoid", *others] * directions,
            "activation_alpha": [slope] * directions, "activation_beta": [offset] * directions}


def _merge(g: GraphBuilder, y: str, axis: int, mode: str, name: str) -> str:
    """The two directions on `axis` of `y` joined by a merge_mode: sum, mul or ave."""
    forward, backward = (g.op("Gather", [y, g.const(d, scalar=True)], f"{name}.direction{d}", axis=axis) for d in (0, 1))
    if mode == "mul":
        return g.op("Mul", [forward, backward], name)
    total = g.op("Add", [forward, backward], name if mode == "sum" else f"{name}.sum")
    return total if mode == "sum" else g.op("Mul", [total, g.const(0.5, dtype="float32", scalar=True)], name)


def _or_initial(g: GraphBuilder, final: tuple[str, str], initial: tuple[str, ...], lengths: str, hint: str) -> tuple[str, str]:
    """Each final state (`[directions, batch, units]`; "" where not made), or the initial
    one where a sequence has no real step."""
    positive = g.op("Greater", [lengths, g.const(0, scalar=True)], f"{hint}.nonempty")
    keep = g.op("Unsqueeze", [positive, g.const([0, 2])], f"{hint}.nonempty")
    h, c = final
    h = g.op("Where", [keep, h, initial[0]], f"{hint}.final_h")
    c = g.op("Where", [keep, c, initial[1]], f"{hint}.final_c") if c else ""
    return h, c


def _state_input(g: GraphBuilder, name: str, units: int) -> str:
    return g.add_input(name, TensorProto.FLOAT, ["batch", units])


def _state_output(g: GraphBuilder, state_in: str, produced: str, lengths: str | None, units: int) -> str:
    """The state after the chunk, `[batch, units]`, as the graph output `<state>.next`."""
    name = f"{state_in}.next"
    if lengths is None:
        out = g.op("Squeeze", [produced, g.const([0])], name, names=[name])[0]
    else:
        squeezed = g.op("Squeeze", [produced, g.const([0])], f"{state_in}.after")
        keep = g.nonempty(lengths, 2)
        out = g.op("Where", [keep, squeezed, state_in], name, names=[name])[0]
    g.add_output(name, TensorProto.FLOAT, ["batch", units])
    return out
