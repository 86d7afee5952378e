"""Semantic rules of spec version 2 (graphs): what the schema and the graph's shape
inference (`rnnc.graph`) cannot say, each a small function over the built parts.

The v1 rules that read only training, data and export settings apply as they are
(`rnnc.validate`); the rules about the output are asked once per output here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .errors import Problem, did_you_mean
from .validate import _PROBABILITIES, Parts, model_size_is_trainable, one_validation_source


@dataclass
class GraphParts(Parts):
    inputs: dict[str, ir.Input] | None = None
    losses: dict[str, ir.Loss] | None = None
    outputs: list[ir.Output] | None = None
    warnings: list[Problem] = field(default_factory=list)
    complete: bool = False  # every node inferred


def _node(parts: GraphParts, index: int) -> ir.Node:
    assert parts.nodes is not None
    return next(n for n in parts.nodes if n.index == index)


def _final(parts: GraphParts, node: ir.Node) -> str:
    """The activation an output comes out of (through dropout), else its layer's kind."""
    by_key = {n.key: n for n in parts.nodes or ()}
    while isinstance(node.layer, ir.Dropout) and node.sources and node.sources[0] in by_key:
        node = by_key[node.sources[0]]
    match node.layer:
        case ir.Dense() | ir.Activation() | ir.Conv1D():
            return node.layer.activation
        case _:
            return node.layer.kind


def monitor_names(outputs: list[ir.Output] | tuple[ir.Output, ...]) -> list[str]:
    """What training logs for these outputs: `loss` and the metrics, named after their
    output (`answer_accuracy`, `answer_loss`) when there are several."""
    if len(outputs) == 1:
        return ["loss", *outputs[0].metrics]
    names = ["loss"]
    for out in outputs:
        names += [f"{out.name}_loss", *(f"{out.name}_{m}" for m in out.metrics)]
    return names


def losses_fit_outputs(parts: GraphParts) -> list[Problem]:
    if not parts.complete or parts.outputs is None:
        return []
    problems = []
    for out in parts.outputs:
        node, loss = _node(parts, out.node), out.loss
        shape = node.output_shape
        path = ("outputs", out.name, "loss")
        if loss.type in ("categorical_crossentropy", "sparse_categorical_crossentropy") and shape[-1] == 1:
            problems.append(parts.doc.problem(
                path, f"{loss.type} needs an output of one unit per class (at least 2), '{out.name}' has 1; "
                      "for two classes use binary_crossentropy with 1 unit"))
        if loss.is_classification:
            final, wanted = _final(parts, node), _PROBABILITIES[loss.type]
            if not loss.from_logits and final != wanted:
                problems.append(parts.doc.problem(
                    path, f"{loss.type} expects probabilities: end '{out.name}' with activation '{wanted}' "
                          f"(it ends with '{final}'), or set from_logits: true"))
            if loss.from_logits and final != "linear":
                problems.append(parts.doc.problem(
                    path, f"from_logits: true expects a linear output, but '{out.name}' ends with '{final}'"))
        problems += [
            parts.doc.problem(("outputs", out.name, "metrics", i), f"'{m}' needs a classification loss, got {loss.type}")
            for i, m in enumerate(out.metrics)
            if m in ("accuracy", "precision", "recall", "f1", "auc") and not loss.is_classification
        ]
    return problems


def graph_monitors_exist(parts: GraphParts) -> list[Problem]:
    if parts.training is None or parts.outputs is None or (parts.losses and len(parts.outputs) != len(parts.losses)):
        return []
    names = monitor_names(parts.outputs)
    validation = bool(parts.training.validation_split) or bool(parts.data and parts.data.validation)
    if validation:
        names += [f"val_{n}" for n in names]
    problems = []
    for section, settings in (("early_stopping", parts.training.early_stopping), ("lr_schedule", parts.training.lr_schedule)):
        if settings is None or (section == "lr_schedule" and settings.type != "plateau"):
            continue
        if settings.monitor not in names:
            hint = " (no validation data: set data.validation or training.validation_split)" if (
                not validation and settings.monitor.startswith("val_")) else did_you_mean(settings.monitor, names)
            problems.append(parts.doc.problem(
                ("training", section, "monitor"), f"cannot monitor '{settings.monitor}'{hint}; available: {', '.join(names)}"))
    return problems


def graph_data_is_npz(parts: GraphParts) -> list[Problem]:
    """A graph reads `.npz` files whose arrays are named after its inputs and outputs."""
    if parts.data is None:
        return []
    problems = []
    for key in ("csv", "text"):
        if getattr(parts.data, key) is not None:
            problems.append(parts.doc.problem(
                ("data", key), f"data.{key} reads files for a v1 chain; a graph reads .npz files with one array per input "
                               "and output", key=True))
    for role in ("train", "validation", "test"):
        path = getattr(parts.data, role)
        if path is None:
            continue
        if "\0" in path:
            problems.append(parts.doc.problem(("data", role), "a file name cannot contain a NUL character"))
        elif Path(path).is_dir():
            problems.append(parts.doc.problem(("data", role), f"{path} is a directory, not a data file"))
        elif not Path(path).exists():
            problems.append(parts.doc.problem(("data", role), f"no such file: {path}"))
        elif Path(path).suffix != ".npz":
            problems.append(parts.doc.problem(
                ("data", role), f"a graph reads .npz files (one array per input and output), got {Path(path).name}"))
    return problems


def graph_can_stream(parts: GraphParts) -> list[Problem]:
    """Each kind's own rule (`streaming_problem`), and a decoder started from another
    layer's state, whose first chunk alone would start there."""
    if parts.export is None or not parts.export.streaming or not parts.complete:
        return []
    problems = []
    for node in parts.nodes or ():
        if reason := node.layer.streaming_problem():
            problems.append(parts.doc.problem(("layers", node.index), f"{reason} (export.streaming is true)"))
        elif node.state_from:
            problems.append(parts.doc.problem(
                ("layers", node.index, "initial_state"),
                "a layer started from another layer's state cannot stream: each chunk would start it again "
                "(export.streaming is true)"))
    return problems


def normalization_reads_an_input(parts: GraphParts) -> list[Problem]:
    """normalization adapts to the training data, so it reads an input of the graph."""
    if not parts.complete or parts.inputs is None:
        return []
    return [
        parts.doc.problem(("layers", node.index),
                          f"normalization is adapted to the training data: its input must be one of the graph's "
                          f"float inputs ({', '.join(n for n, i in parts.inputs.items() if i.dtype == 'float32') or 'none'}), "
                          f"got {node.sources[0] if not node.sources[0].startswith('layers[') else 'a layer'}")
        for node in parts.nodes or ()
        if isinstance(node.layer, ir.Normalization) and (
            node.sources[0] not in parts.inputs or parts.inputs[node.sources[0]].dtype != "float32")
    ]


def feedback_fits(parts: GraphParts) -> list[Problem]:
    """`feedback: I` names an input of token ids whose next step the output predicts."""
    if not parts.complete or parts.outputs is None or parts.inputs is None:
        return []
    problems = []
    for out in parts.outputs:
        fb = out.feedback
        if fb is None:
            continue
        path = ("outputs", out.name, "feedback")
        inp = parts.inputs.get(fb.input)
        if inp is None:
            problems.append(parts.doc.problem(path, f"feedback names no input '{fb.input}'{did_you_mean(fb.input, list(parts.inputs))}"))
            continue
        if inp.dtype != "int64" or not inp.sequence:
            problems.append(parts.doc.problem(path, f"feedback takes an input of token ids int64 [timesteps]; '{fb.input}' is not one"))
            continue
        node = _node(parts, out.node)
        if len(node.output_shape) != 3:
            problems.append(parts.doc.problem(path, f"feedback needs an output per step; '{out.name}' has shape without time axis"))
        elif out.loss.type != "sparse_categorical_crossentropy":
            problems.append(parts.doc.problem(path, f"feedback predicts ids: its loss is sparse_categorical_crossentropy, got {out.loss.type}"))
        others = [n for n in parts.inputs if n != fb.input]
        missing = [k for k in ("start", "end", "max_length") if getattr(fb, k) is None]
        if others and missing:
            problems.append(parts.doc.problem(
                path, f"decoding '{fb.input}' beside other inputs needs {', '.join(missing)}: the id it starts with, "
                      "the id it stops at, and the most steps"))
    return problems


GRAPH_RULES = (
    model_size_is_trainable,
    losses_fit_outputs,
    one_validation_source,
    graph_monitors_exist,
    graph_data_is_npz,
    graph_can_stream,
    normalization_reads_an_input,
    feedback_fits,
)


def graph_problems(parts: GraphParts) -> list[Problem]:
    return [problem for rule in GRAPH_RULES for problem in rule(parts)]
