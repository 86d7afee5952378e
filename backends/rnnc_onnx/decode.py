"""The two graphs that decode a generative model: its encoder, run once, and one decoder step.

`rnnc.decoding.decoding_plan` splits the graph; here each part is lowered with the
full graph's own `lower_graph_node`, so both compute exactly what `lower_graph` does.
The encoder graph (`lower_encoder`) takes every input but the fed-back one I and
returns the boundary values under their keys (a sequence batch-major, zero past
`<key>.lengths`, which it returns too) and each started state, `state.<index>.h` (and
`.c`), `[batch, units]`: the encoder layer's final state that starts that decoder
layer. The step graph (`lower_step`) is the streaming lowering of the decoder nodes: I
`[batch, time]` with every step real (no lengths), the boundary values as inputs, each
decoder layer's state in and `<state>.next` out; O comes out first. Decoding runs on
the host (greedy, beam search and sampling are loops over this step), so one graph
serves them all and the encoder's work is never repeated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from rnnc import ir
from rnnc.decoding import METADATA_KEY, DecodingPlan, metadata_entry
from rnnc.text import METADATA_KEY as VOCAB_KEY
from rnnc.text import Vocab

from .builder import GraphBuilder
from .flow import Flow, in_layout, zero_padding
from .graph import _graph_inputs, _version, _wants_time_major, lower_graph_node, time_axes
from .metadata import sealed
from .quantize import quantize_int8


def lower_encoder(model: ir.Model, weights: Mapping[str, np.ndarray], plan: DecodingPlan) -> onnx.ModelProto:
    """The graph that runs the encoder nodes of `plan` once per question."""
    arrays = _arrays(weights)
    g = GraphBuilder(model.export.opset)
    times = time_axes(model)
    values = _graph_inputs(g, model, times)
    _drop_input(g, plan.input, values)
    outputs = [*plan.boundary, *(f"{key}.lengths" for key in plan.boundary if _is_sequence(model, key)), *plan.started]
    g.reserve([name for name in outputs if name not in values and not _is_input_lengths(model, name)])
    encoder = set(plan.encoder)
    by_key = {n.key: n for n in model.nodes}
    starts = {by_key[k].state_from for k in plan.decoder if by_key[k].state_from in encoder}
    starts |= {n.state_from for n in model.nodes if n.key in encoder and n.state_from}
    states: dict[str, tuple[str, ...]] = {}
    for node in model.nodes:
        if node.key not in encoder:
            continue
        flow, final = lower_graph_node(g, node, arrays, [values[k] for k in node.sources], _wants_time_major(model, node),
                                       False, states.get(node.state_from, ()), node.key in starts)
        values[node.key] = flow
        if final:
            states[node.key] = final
    for key in plan.boundary:
        _boundary_output(g, model, key, values[key])
    for key in plan.decoder:
        node = by_key[key]
        if node.state_from not in encoder:
            continue
        assert isinstance(node.layer, ir.Recurrent)
        for tensor, name in zip(states[node.state_from], _state_names(plan, key), strict=True):
            g.op("Squeeze", [tensor, g.const([0])], name, names=[name])
            g.add_output(name, TensorProto.FLOAT, ["batch", node.layer.units])
    return _model(g, model, f"{model.name}-encoder")


def lower_step(model: ir.Model, weights: Mapping[str, np.ndarray], plan: DecodingPlan) -> onnx.ModelProto:
    """The graph of one decoder step (or a chunk of steps, all real) of `plan`."""
    arrays = _arrays(weights)
    g = GraphBuilder(model.export.opset)
    by_key = {n.key: n for n in model.nodes}
    g.reserve([plan.output])
    values = {plan.input: Flow(g.add_input(plan.input, TensorProto.INT64, ["batch", "time"]), 2)}
    for key in plan.boundary:
        values[key] = _boundary_input(g, model, key)
    for key in plan.decoder:
        node = by_key[key]
        layer = node.layer
        flows = [values[k] for k in node.sources]
        if isinstance(layer, ir.Embedding) and layer.mask_zero:
            layer = replace(layer, mask_zero=False)  # every step is real: no lengths from the ids
        flow, _ = lower_graph_node(g, replace(node, layer=layer), arrays, flows, _wants_time_major(model, node), True, (), False)
        values[key] = flow
    out = next(o for o in model.outputs if o.name == plan.output)
    node = next(n for n in model.nodes if n.index == out.node)
    flow = in_layout(g, values[node.key], time_major=False)
    g.rename_output(flow.tensor, plan.output)
    g.add_output(plan.output, TensorProto.FLOAT, ["batch", "time", node.output_shape[-1]], first=True)
    return _model(g, model, f"{model.name}-step")


def _boundary_input(g: GraphBuilder, model: ir.Model, key: str) -> Flow:
    """A boundary value as the step graph takes it: a sequence `[batch, <key>.time, F]`
    with its lengths, or a vector `[batch, F]`."""
    features = _shape(model, key)[-1]
    if not _is_sequence(model, key):
        return Flow(g.add_input(key, TensorProto.FLOAT, ["batch", features]), 2)
    tensor = g.add_input(key, TensorProto.FLOAT, ["batch", f"{key}.time", features])
    return Flow(tensor, 3, lengths=g.add_input(f"{key}.lengths", TensorProto.INT64, ["batch"]))


def _boundary_output(g: GraphBuilder, model: ir.Model, key: str, flow: Flow) -> None:
    """A boundary value as the encoder graph returns it (and a sequence's lengths:
    every step where it has none)."""
    features = _shape(model, key)[-1]
    if flow.rank == 2:
        _output(g, flow.tensor, key, ["batch", features])
        return
    flow = in_layout(g, flow, time_major=False)
    if flow.tensor != key:
        flow = zero_padding(g, flow)
    _output(g, flow.tensor, key, ["batch", f"{key}.time", features])
    lengths = flow.lengths
    if lengths is None:  # every step real: the time axis, once per sequence
        steps = g.op("Shape", [flow.tensor], f"{key}.steps", start=1, end=2)
        batch = g.op("Shape", [flow.tensor], f"{key}.batch", start=0, end=1)
        lengths = g.op("Expand", [steps, batch], f"{key}.full")
    _output(g, lengths, f"{key}.lengths", ["batch"], TensorProto.INT64)


def _output(g: GraphBuilder, tensor: str, name: str, dims: list[int | str], dtype: int = TensorProto.FLOAT) -> None:
    if tensor != name:  # an Identity: one tensor may be two boundary values (dropout passes its input on)
        g.op("Identity", [tensor], name, names=[name])
    g.add_output(name, dtype, dims)


def _drop_input(g: GraphBuilder, name: str, values: dict[str, Flow]) -> None:
    """The encoder graph takes every input but the fed-back one (and its lengths)."""
    g.inputs[:] = [v for v in g.inputs if v.name not in (name, f"{name}.lengths")]
    values.pop(name)


def _state_names(plan: DecodingPlan, key: str) -> tuple[str, ...]:
    return dict(plan.states)[key]


def _shape(model: ir.Model, key: str) -> ir.Shape:
    for node in model.nodes:
        if node.key == key:
            return node.output_shape
    return model.graph.input(key).tensor_shape if model.graph else model.input.tensor_shape


def _is_sequence(model: ir.Model, key: str) -> bool:
    return len(_shape(model, key)) == 3


def _is_input_lengths(model: ir.Model, name: str) -> bool:
    return any(name == f"{inp.name}.lengths" for inp in model.inputs)


def _arrays(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}


def _model(g: GraphBuilder, model: ir.Model, name: str) -> onnx.ModelProto:
    proto = helper.make_model(
        g.graph(name, doc=model.description),
        opset_imports=[helper.make_opsetid("", model.export.opset)],
        producer_name="rnnc",
        producer_version=_version(),
        doc_string=model.description,
    )
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    return proto


def companion_path(path: str | os.PathLike[str], role: str) -> Path:
    """`X.step.onnx` or `X.encoder.onnx` beside `X.onnx` (`role`: step or encoder)."""
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.{role}.onnx")


def companions(model: ir.Model, weights: Mapping[str, np.ndarray], plan: DecodingPlan, path: str | os.PathLike[str],
               vocab: Vocab | None = None) -> tuple[dict[str, str], dict[Path, onnx.ModelProto]]:
    """The `rnnc.decoding` entry (as a metadata key and its JSON) and the decoding
    graphs to write beside the model at `path`, quantised as `export.quantize` says,
    each with the entry and sealed."""
    step = companion_path(path, "step")
    encoder = companion_path(path, "encoder") if plan.has_encoder else None
    entry = {METADATA_KEY: json.dumps(metadata_entry(plan, step.name, encoder.name if encoder else None))}
    graphs = {step: lower_step(model, weights, plan)}
    if encoder is not None:
        graphs[encoder] = lower_encoder(model, weights, plan)
    props = {"rnnc_version": _version(), "spec_name": model.name, "spec_hash": model.spec_hash, "spec_version": "2",
             "opset": str(model.export.opset), **entry}
    if vocab is not None:
        props[VOCAB_KEY] = vocab.to_json()
    for file, proto in graphs.items():
        helper.set_model_props(proto, {**props, "decoding_graph": "step" if file == step else "encoder"})
        graphs[file] = sealed(quantize_int8(proto) if model.export.quantize == "int8" else proto)
    return entry, graphs


def with_entry(proto: onnx.ModelProto, entry: Mapping[str, str]) -> onnx.ModelProto:
    """`proto` with the decoding entry added to its metadata, sealed again."""
    kept = {p.key: p.value for p in proto.metadata_props}
    helper.set_model_props(proto, {**kept, **entry})
    return sealed(proto)
