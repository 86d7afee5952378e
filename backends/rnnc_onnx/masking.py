"""Skipping masked steps anywhere (rnnc.layers.masking) in the ONNX graph: `masking`,
and the step mask of an embedding with `mask_zero: anywhere`.

The native recurrent operators only stop at `sequence_lens`, so the graph moves each
sequence's kept steps to its front, in order, and hands on their count as the lengths:
the key of step t is t where kept and T + t where skipped, `TopK` (smallest first) of
the keys orders the steps, `GatherElements` takes them. Every later layer then sees a
sequence whose skipped steps are trailing padding, which the exporter already keeps
out of every real result; this is exact, the values are moved, never recomputed.
"""

from __future__ import annotations

from onnx import TensorProto

from rnnc import ir

from .builder import GraphBuilder
from .flow import Flow, in_layout


def lower_masking(g: GraphBuilder, node: ir.Node, flow: Flow) -> Flow:
    """Steps whose features all equal `mask_value` skipped."""
    layer = node.layer
    assert isinstance(layer, ir.Masking)
    hint = f"layers.{node.index}"
    x = in_layout(g, flow, time_major=False)
    value = g.const(layer.mask_value, dtype="float32", scalar=True)
    differs = g.op("Not", [g.op("Equal", [x.tensor, value], f"{hint}.equal")], f"{hint}.differs")
    kept = g.op("Cast", [g.op("ReduceMax", [g.op("Cast", [differs], f"{hint}.differs", to=TensorProto.INT32),
                                            g.const([2])], f"{hint}.any", keepdims=0)], f"{hint}.kept", to=TensorProto.BOOL)
    return keep_first(g, x, kept, hint)


def keep_ids(g: GraphBuilder, ids: Flow, hint: str) -> Flow:
    """Token ids `[batch, time]` with every id 0 skipped (`mask_zero: anywhere`)."""
    kept = g.op("Not", [g.op("Equal", [ids.tensor, g.const(0, scalar=True)], f"{hint}.zero")], f"{hint}.kept")
    return keep_first(g, in_layout(g, ids, time_major=False), kept, hint)


def keep_first(g: GraphBuilder, x: Flow, kept: str, hint: str) -> Flow:
    """Batch-major `x` with each row's `kept` steps (`[batch, time]` bool, and within
    its lengths) moved to the front, in order; the lengths are their count."""
    if x.lengths is not None:
        real = g.op("Squeeze", [g.step_mask(x.tensor, x.lengths, time_major=False), g.const([2])], f"{hint}.real")
        kept = g.op("And", [kept, real], f"{hint}.kept")
    steps = g.time_steps(x.tensor, 1)
    positions = g.op("Range", [g.const(0, scalar=True), steps, g.const(1, scalar=True)], f"{hint}.positions")
    later = g.op("Add", [positions, steps], f"{hint}.later")
    key = g.op("Cast", [g.op("Where", [kept, positions, later], f"{hint}.key")], f"{hint}.key", to=TensorProto.FLOAT)
    count = g.op("Unsqueeze", [steps, g.const([0])], f"{hint}.count")
    _, order = g.op("TopK", [key, count], f"{hint}.order", outputs=2, axis=1, largest=0, sorted=1)
    if x.rank == 3:
        order = g.op("Expand", [g.op("Unsqueeze", [order, g.const([2])], f"{hint}.order"),
                                g.op("Shape", [x.tensor], f"{hint}.shape")], f"{hint}.order")
    moved = g.op("GatherElements", [x.tensor, order], f"{hint}.out", axis=1)
    lengths = g.op("ReduceSum", [g.op("Cast", [kept], f"{hint}.kept", to=TensorProto.INT64), g.const([1])],
                   f"{hint}.lengths", keepdims=0)
    return Flow(moved, x.rank, time_major=False, lengths=lengths)
