"""`lower_graph(model, weights)`: a graph (spec version 2) and its weights as one ONNX model.

The interface (docs/deploy.md): one graph input per spec input, named after it
(`float32 [batch, time, F]` a sequence, `[batch, F]` static features, `int64 [batch,
time]` ids, `int64 [batch]` one id per sample), `<input>.lengths` (`int64 [batch]`)
for each input of `rnnc.metadata.lengths_rules`, and one output per spec output, named
after it, in spec order; with `export.streaming` the states as in v1. Batch and time
axes are dynamic: one sequence input's time axis is `time`, several are
`<input>.time`, and an output's time axis is the one of the value it follows.

The nodes are lowered in spec order, each onto the flows of the values it reads
(`node.sources`); `lower_graph_node` is the one `match` over the closed set of kinds.
A recurrent node whose final state another node starts from (`initial_state:`) hands
its `Y_h`/`Y_c` on. Sequence outputs leave batch-major and zero past their lengths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import assert_never

import numpy as np
import onnx
from onnx import TensorProto, helper

from rnnc import ir
from rnnc.artifacts import check_weights
from rnnc.errors import Problem
from rnnc.metadata import lengths_rules, model_metadata
from rnnc.text import Vocab

from .builder import GraphBuilder
from .flow import Flow, in_layout, zero_padding
from .graph_layers import lower_attention, lower_merge, lower_normalization, lower_repeat_vector
from .layers import lower_embedding, lower_node, unstreamable
from .metadata import sealed
from .recurrent import lower_stateful

Classes = Sequence[str] | Mapping[str, Sequence[str]]


def lower_graph(model: ir.Model, weights: Mapping[str, np.ndarray], classes: Classes | None = None,
                vocab: Vocab | None = None) -> onnx.ModelProto:
    """The ONNX model computing the graph `model` with `weights` (IR names, PyTorch
    layout), once `lower.lower` has found no export problem. Raises `ArtifactError` for
    weights that do not fit; `classes` maps an output's name to its class names (a
    plain list: the only output's)."""
    check_weights(weights, model, "weights")
    metadata = model_metadata(model, classes, vocab)  # checks the class names before any work
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
    g = GraphBuilder(model.export.opset)
    times = time_axes(model)
    values = _graph_inputs(g, model, times)
    g.reserve([out.name for out in model.outputs])
    starts = {n.state_from for n in model.nodes if n.state_from}
    states: dict[str, tuple[str, ...]] = {}
    for node in model.nodes:
        flows = [values[key] for key in node.sources]
        flow, final = lower_graph_node(g, node, arrays, flows, _wants_time_major(model, node), model.export.streaming,
                                       states.get(node.state_from, ()), node.key in starts)
        assert flow.rank == len(node.output_shape), f"{node.key}: rank {flow.rank}, IR {node.output_shape}"
        values[node.key] = flow
        if final:
            states[node.key] = final
    _graph_outputs(g, model, values, times)

    onnx_model = helper.make_model(
        g.graph(model.name, doc=model.description),
        opset_imports=[helper.make_opsetid("", model.export.opset)],
        producer_name="rnnc",
        producer_version=_version(),
        doc_string=model.description,
    )
    onnx_model.ir_version = helper.find_min_ir_version_for(list(onnx_model.opset_import))
    helper.set_model_props(onnx_model, metadata)
    return sealed(onnx_model)


def lower_graph_node(g: GraphBuilder, node: ir.Node, weights: Mapping[str, np.ndarray], flows: Sequence[Flow],
                     time_major: bool, streaming: bool, initial: tuple[str, ...], final: bool) -> tuple[Flow, tuple[str, ...]]:
    """`node` lowered onto the flows it reads; also its final state when `final` (a
    recurrent node another one starts from), started from `initial`."""
    layer = node.layer
    match layer:
        case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
            return lower_stateful(g, node, weights, flows[0], streaming, initial, final)
        case ir.Embedding():
            ids = flows[0]
            if layer.mask_zero and ids.rank == 2 and ids.lengths is None:  # lengths from the ids, filled by the caller
                ids = replace(ids, lengths=f"{node.sources[0]}.lengths")
            return lower_embedding(g, node, weights, ids, time_major), ()
        case ir.Concatenate() | ir.Add() | ir.Multiply() | ir.Average():
            return lower_merge(g, node, flows), ()
        case ir.RepeatVector():
            return lower_repeat_vector(g, node, flows), ()
        case ir.Attention():
            return lower_attention(g, node, weights, flows), ()
        case ir.Normalization():
            return lower_normalization(g, node, weights, flows[0]), ()
        case ir.Dense() | ir.Dropout() | ir.Activation() | ir.LayerNorm() | ir.Conv1D() | ir.Pool():
            return lower_node(g, node, weights, flows[0], time_major, streaming), ()
        case _:
            assert_never(layer)


def graph_streaming_problems(model: ir.Model) -> list[Problem]:
    """With `export.streaming`, each node of the graph `model` that cannot run chunk by
    chunk (the rules `rnnc check` applies too, `rnnc.graph_rules.graph_can_stream`)."""
    if not model.export.streaming:
        return []
    origin = model.name or "<spec>"
    problems = []
    for node in model.nodes:
        where = f"layers[{node.index}] ({node.layer.kind})"
        if why := unstreamable(node):
            problems.append(Problem(origin, None, None, where, why, ("layers", node.index)))
        elif node.state_from:
            problems.append(Problem(origin, None, None, where,
                                    "a layer started from another layer's state cannot stream: each chunk would start it "
                                    "again; set export.streaming: false to export it", ("layers", node.index, "initial_state")))
    return problems


def time_axes(model: ir.Model) -> dict[str, str | int]:
    """The name (or fixed size) of each sequence value's time axis in the ONNX graph,
    by key: an input's own (`time`, or `<input>.time` beside other sequence inputs); a
    convolution that changes the steps makes `<key>.steps`; repeat_vector `n` has n
    steps, `like:` the like's; attention the query's; every other kind its input's."""
    sequences = [inp.name for inp in model.inputs if inp.sequence]
    axes: dict[str, str | int] = {name: "time" if len(sequences) == 1 else f"{name}.time" for name in sequences}
    for node in model.nodes:
        if len(node.output_shape) != 3:
            continue
        match node.layer:
            case ir.Conv1D(padding=padding, stride=stride) if padding != "same" or stride != 1:
                axes[node.key] = f"{node.key}.steps"
            case ir.RepeatVector(like="", n=n):
                axes[node.key] = n
            case ir.RepeatVector() | ir.Attention():
                axes[node.key] = axes[node.sources[1]]
            case _:
                axes[node.key] = axes[node.sources[0]]
    return axes


def _graph_inputs(g: GraphBuilder, model: ir.Model, times: Mapping[str, str | int]) -> dict[str, Flow]:
    """The graph's inputs, then their lengths: the flow each input starts as (with the
    lengths of a variable-length one; an embedding with mask_zero takes them itself)."""
    flows = {}
    for inp in model.inputs:
        time = times.get(inp.name)
        if inp.dtype == "int64":
            dims: list[str | int] = ["batch", time] if inp.sequence else ["batch"]  # type: ignore[list-item]
            flows[inp.name] = Flow(g.add_input(inp.name, TensorProto.INT64, dims), len(dims))
        else:
            dims = ["batch", time, inp.shape[-1]] if inp.sequence else ["batch", inp.shape[-1]]  # type: ignore[list-item]
            flows[inp.name] = Flow(g.add_input(inp.name, TensorProto.FLOAT, dims), len(dims))
    for name in lengths_rules(model):
        lengths = g.add_input(f"{name}.lengths", TensorProto.INT64, ["batch"])
        if model.graph and model.graph.input(name).variable_length:
            flows[name] = replace(flows[name], lengths=lengths)
    return flows


def _graph_outputs(g: GraphBuilder, model: ir.Model, values: Mapping[str, Flow], times: Mapping[str, str | int]) -> None:
    """Each output, batch-major and zero past its lengths, renamed after the spec's
    output, before the streaming states' outputs."""
    by_index = {n.index: n for n in model.nodes}
    renamed: dict[str, str] = {}  # a tensor renamed in place for an earlier output: the same value
    for position, out in enumerate(model.outputs):
        node = by_index[out.node]
        flow = values[node.key]
        flow = replace(flow, tensor=renamed.get(flow.tensor, flow.tensor))
        if flow.rank == 3:
            flow = zero_padding(g, in_layout(g, flow, time_major=False))
        if g.rename_output(flow.tensor, out.name):
            renamed[flow.tensor] = out.name
        features = node.output_shape[-1]
        dims = ["batch", times[node.key], features] if flow.rank == 3 else ["batch", features]
        g.add_output(out.name, TensorProto.FLOAT, dims, at=position)


def _wants_time_major(model: ir.Model, node: ir.Node) -> bool:
    """Whether a sequence `node` makes (embedding, conv1d) is best made time-major: when
    a recurrent node reads it."""
    return any(isinstance(n.layer, ir.Recurrent) and n.sources[:1] == (node.key,) for n in model.nodes)


def _version() -> str:
    from rnnc import __version__

    return __version__
