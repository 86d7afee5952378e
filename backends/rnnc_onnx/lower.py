"""`lower(model, weights)`: an IR model and its weights as one ONNX `ModelProto`.

The graph's interface (see docs/deploy.md): input `x` (`float32 [batch, time,
features]`, or `int64 [batch, time]` token ids), `lengths` (`int64 [batch]`) exactly
when the model is variable-length (`shape: [null, F]` or an embedding with
`mask_zero`), output `y`, and with `export.streaming` one `state.<index>.h` (and `.c`)
input and `....next` output per recurrent layer. Batch and time axes are dynamic.
Nodes are lowered in order by `layers.lower_node`, one `match` over the closed set of
layer kinds. A graph (spec version 2, `model.graph`) has its own interface and
lowering: `graph.lower_graph`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from rnnc import ir
from rnnc.artifacts import check_weights
from rnnc.errors import Problem, SpecError
from rnnc.metadata import model_metadata
from rnnc.text import Vocab

from .builder import GraphBuilder
from .flow import Flow, in_layout, zero_padding
from .graph import Classes, graph_streaming_problems, lower_graph
from .layers import lower_node, unstreamable
from .metadata import sealed

OPSETS = ir.EXPORT_OPSETS  # declared in the core, where the schema is checked against it


def lower(
    model: ir.Model, weights: Mapping[str, np.ndarray], classes: Classes | None = None, vocab: Vocab | None = None
) -> onnx.ModelProto:
    """The ONNX model computing `model` with `weights` (IR names, PyTorch layout).

    Raises `ArtifactError` when the weights do not fit the model and `SpecError` when
    the export settings cannot be honoured (an opset out of range, streaming a layer
    that needs the whole sequence). `classes` names the output classes in the metadata,
    `vocab` is the raw-text vocabulary the model was trained with. A graph (spec
    version 2) is lowered by `graph.lower_graph`, its `classes` by output name.
    """
    problems = export_problems(model)
    if problems:
        raise SpecError(problems)
    if model.graph is not None:
        return lower_graph(model, weights, classes, vocab)
    check_weights(weights, model, "weights")
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
    g = GraphBuilder(model.export.opset)
    flow = _graph_inputs(g, model)
    nodes = model.nodes
    for i, node in enumerate(nodes):
        flow = lower_node(g, node, arrays, flow, _wants_time_major(nodes[i + 1 :]), model.export.streaming)
        assert flow.rank == len(node.output_shape), f"layer {node.index}: rank {flow.rank}, IR {node.output_shape}"
    if flow.rank == 3:
        flow = zero_padding(g, in_layout(g, flow, time_major=False))
    g.rename_output(flow.tensor, "y")
    g.add_output("y", TensorProto.FLOAT, _output_dims(model), first=True)

    onnx_model = helper.make_model(
        g.graph(model.name, doc=model.description),
        opset_imports=[helper.make_opsetid("", model.export.opset)],
        producer_name="rnnc",
        producer_version=_version(),
        doc_string=model.description,
    )
    onnx_model.ir_version = helper.find_min_ir_version_for(list(onnx_model.opset_import))
    helper.set_model_props(onnx_model, model_metadata(model, classes, vocab))
    return sealed(onnx_model)


def export_problems(model: ir.Model) -> list[Problem]:
    """What keeps `model` from being exported with its `export` settings."""
    origin = model.name or "<spec>"
    problems = []
    if model.export.opset not in OPSETS:
        problems.append(
            Problem(origin, None, None, "export.opset",
                    f"the ONNX backend writes opsets {OPSETS.start} to {OPSETS.stop - 1}, got {model.export.opset}", ("export", "opset"))
        )
    if model.graph is not None:
        return problems + graph_streaming_problems(model)
    if model.input.dtype == "int64" and (not model.nodes or not isinstance(model.nodes[0].layer, ir.Embedding)):
        problems.append(Problem(origin, None, None, "layers[0]", "token id input needs an embedding as the first layer", ("layers", 0)))
    if model.export.streaming:
        problems += [
            Problem(origin, None, None, f"layers[{node.index}] ({node.layer.kind})", why, ("layers", node.index))
            for node in model.nodes
            if (why := unstreamable(node))
        ]
    return problems


def _graph_inputs(g: GraphBuilder, model: ir.Model) -> Flow:
    spec = model.input
    if spec.dtype == "int64":
        x = g.add_input("x", TensorProto.INT64, ["batch", "time"])
        rank = 2
    else:
        x = g.add_input("x", TensorProto.FLOAT, ["batch", "time", *spec.shape[1:]])  # type: ignore[list-item]
        rank = 3
    lengths = g.add_input("lengths", TensorProto.INT64, ["batch"]) if model.variable_length else None
    return Flow(x, rank, time_major=False, lengths=lengths)


def _wants_time_major(rest: Sequence[ir.Node]) -> bool:
    """Whether a sequence made now is best made time-major: yes when a recurrent layer
    comes before anything that fixes the layout itself (conv1d, pool) or the end."""
    for node in rest:
        if isinstance(node.layer, ir.Recurrent):
            return True
        if isinstance(node.layer, ir.Conv1D | ir.Pool):
            return False
    return False


def _output_dims(model: ir.Model) -> list[int | str]:
    dims: list[int | str] = ["batch"]
    if model.sequence_output:
        convs = [n.layer for n in model.nodes if isinstance(n.layer, ir.Conv1D)]
        keeps_time = all(c.padding == "same" and c.stride == 1 for c in convs)
        dims.append("time" if keeps_time else "steps")
    dims.append(int(model.output_shape[-1]))
    return dims


def _version() -> str:
    from rnnc import __version__

    return __version__
