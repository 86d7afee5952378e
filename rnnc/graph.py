"""Spec version 2: the layers as a graph, resolved and shape-checked in one pass.

`infer_graph` reads what each layer names (`input:`, a list for merges; attention's
`query:`/`value:`; repeat_vector's `like:`; `initial_state: NAME.state`), resolves the
names against the inputs and the layers before it, and infers every node's shapes with
its kind's rules (`output_shapes`, `params_for`). Beside the shapes it follows two
things no one kind knows, for every value of the graph:

- its time axis: the input (or layer) it comes from, so that sequences of different
  inputs are never merged step by step;
- its lengths: the variable-length input (or `mask_zero` embedding, or conv1d) whose
  lengths it carries, so padding never changes a result where sequences meet.

A layer without `input:` reads the layer before it (the first layer: the only input).
Every problem is reported at its position, with did-you-mean for unknown names; an
input or layer that nothing reads is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import ir
from .errors import Problem, did_you_mean
from .layers.base import ShapeMismatch, show
from .loader import Document

STATE = ".state"


@dataclass(frozen=True)
class Value:
    """What the graph knows of a value besides its shape."""

    shape: ir.Shape
    tokens: bool  # int64 ids, which only an embedding takes
    time: str | None  # the key of the value whose time axis it has (None: no time axis)
    lengths: str | None  # the key of the value whose lengths it carries
    where: str  # how messages name it: "input 'events'", "'enc'", "layers[2]"


@dataclass
class GraphResult:
    nodes: list[ir.Node]
    outputs: list[ir.Output]
    problems: list[Problem]
    warnings: list[Problem]


def _label(key: str) -> str:
    return key if key.startswith("layers[") else f"'{key}'"


def _names(section: Any) -> list[str]:
    return [section] if isinstance(section, str) else list(section) if isinstance(section, list) else []


def infer_graph(doc: Document, inputs: dict[str, ir.Input], layers: list[ir.Layer],
                outputs: dict[str, Any] | None, losses: dict[str, ir.Loss]) -> GraphResult:
    """Nodes, outputs and problems of a v2 spec whose sections passed the schema."""
    sections = doc.data["layers"]
    problems: list[Problem] = []
    values: dict[str, Value] = {}
    for name, inp in inputs.items():
        values[name] = Value(inp.tensor_shape, inp.dtype == "int64", name if inp.sequence else None,
                             name if inp.variable_length else None, f"input '{name}'")
    declared = {s.get("name"): i for i, s in enumerate(sections) if isinstance(s.get("name"), str)}
    for name, index in declared.items():
        if name in inputs:
            problems.append(doc.problem(("layers", index, "name"), f"'{name}' names an input already; give the layer another name"))
    seen_names: set[str] = set()
    for i, section in enumerate(sections):
        name = section.get("name")
        if name in seen_names:
            problems.append(doc.problem(("layers", i, "name"), f"two layers are named '{name}'"))
        seen_names.add(name)

    nodes: list[ir.Node] = []
    read: set[str] = set()
    broken: set[str] = set()  # keys whose node could not be inferred: what reads them is not checked again
    for index, (section, layer) in enumerate(zip(sections, layers)):
        key = section.get("name") or f"layers[{index}]"
        refs = _references(doc, index, section, layer, nodes, inputs, values, declared, problems)
        if refs is None:
            broken.add(key)
            continue
        read.update(r for r, _ in refs)
        if any(r in broken for r, _ in refs):
            broken.add(key)
            continue
        state_from = _initial_state(doc, index, section, layer, nodes, declared, problems)
        if state_from is None:
            broken.add(key)
            continue
        if state_from:
            read.add(state_from)
        try:
            node, value = _infer(index, key, section, layer, [(r, values[r], path) for r, path in refs], state_from)
        except ShapeMismatch as mismatch:
            problems.append(doc.problem(("layers", index), str(mismatch)))
            broken.add(key)
            continue
        nodes.append(node)
        values[key] = value

    result_outputs: list[ir.Output] = []
    if outputs is not None:
        result_outputs = _outputs(doc, outputs, losses, nodes, declared, broken, problems)
        read.update(o.name for o in result_outputs)
    warnings = []
    if not problems:
        for name in inputs:
            if name not in read:
                warnings.append(doc.problem(("inputs", name), f"input '{name}' is not read by any layer", key=True))
        for node in nodes:
            if node.key not in read:
                warnings.append(doc.problem(("layers", node.index), f"{_label(node.key)} is not read by any layer or output"))
    return GraphResult(nodes, result_outputs, problems, warnings)


def _references(doc: Document, index: int, section: dict[str, Any], layer: ir.Layer, nodes: list[ir.Node],
                inputs: dict[str, ir.Input], values: dict[str, Value], declared: dict[str, int],
                problems: list[Problem]) -> list[tuple[str, tuple[Any, ...]]] | None:
    """The keys the layer reads, its main input(s) first, each with the spec path that
    names it; None (with problems added) when one cannot be resolved."""
    refs: list[tuple[str, tuple[Any, ...]]] = []
    main = section.get("input")
    alias = getattr(layer, "value", "") if isinstance(layer, ir.Attention) else ""
    if alias and main is not None:
        problems.append(doc.problem(("layers", index, "value"), "give input: or value:, not both (they name the same)"))
        return None
    if alias:
        main, main_path = alias, ("layers", index, "value")
    else:
        main_path = ("layers", index, "input")
    if main is None:
        if index > 0:
            refs.append((nodes[-1].key if nodes and nodes[-1].index == index - 1 else _key(doc, index - 1), ("layers", index)))
        elif len(inputs) == 1:
            refs.append((next(iter(inputs)), ("layers", index)))
        else:
            problems.append(doc.problem(("layers", index), f"the first layer must name its input: one of {', '.join(inputs)}", key=True))
            return None
    elif isinstance(main, list):
        if not layer.merges:
            problems.append(doc.problem(main_path, f"{layer.kind} reads one value; only concatenate, add, multiply and average take a list"))
            return None
        refs += [(name, (*main_path, j)) for j, name in enumerate(main)]
    else:
        refs.append((main, main_path))
    if layer.merges and len(refs) < 2:
        problems.append(doc.problem(main_path if main is not None else ("layers", index),
                                    f"{layer.kind} takes a list of at least two inputs", key=main is None))
        return None
    for setting in ("query", "like"):
        if getattr(layer, setting, ""):
            refs.append((getattr(layer, setting), ("layers", index, setting)))
    ok = True
    for name, path in refs:
        if name in values:
            continue
        ok = False
        if name == section.get("name"):
            problems.append(doc.problem(path, f"'{name}' is this layer itself: a layer cannot read its own output (a cycle)"))
        elif name in declared and declared[name] > index:
            problems.append(doc.problem(path, f"'{name}' is layers[{declared[name]}], which comes later; a layer reads inputs and earlier layers"))
        elif name in declared or name.startswith("layers["):
            pass  # an earlier layer that failed: its own problem is reported
        elif name.endswith(STATE):
            problems.append(doc.problem(path, f"'{name}' is a recurrent layer's state: pass it as initial_state, not as an input"))
        else:
            known = [*inputs, *(n for n in declared if declared[n] < index)]
            hint = did_you_mean(name, known)
            problems.append(doc.problem(path, f"no input or earlier layer is named '{name}'{hint}; known: {', '.join(known) or 'none'}"))
    return refs if ok else None


def _key(doc: Document, index: int) -> str:
    section = doc.data["layers"][index]
    return section.get("name") or f"layers[{index}]"


def _initial_state(doc: Document, index: int, section: dict[str, Any], layer: ir.Layer, nodes: list[ir.Node],
                   declared: dict[str, int], problems: list[Problem]) -> str | None:
    """The key of the recurrent node whose state starts this one, "" for none, None on a problem."""
    ref = section.get("initial_state")
    if ref is None:
        return ""
    path = ("layers", index, "initial_state")
    if not isinstance(layer, ir.Recurrent):
        problems.append(doc.problem(path, f"initial_state is a setting of recurrent layers, not of {layer.kind}"))
        return None
    if not ref.endswith(STATE):
        problems.append(doc.problem(path, f"initial_state takes a recurrent layer's state, written '{ref}{STATE}'"))
        return None
    name = ref[: -len(STATE)]
    source = next((n for n in nodes if n.name == name), None)
    if source is None:
        if name in declared and declared[name] >= index:
            problems.append(doc.problem(path, f"'{name}' is layers[{declared[name]}], which does not come before this layer"))
        elif name not in declared:
            known = [n for n, i in declared.items() if i < index]
            problems.append(doc.problem(path, f"no earlier layer is named '{name}'{did_you_mean(name, known)}"))
        return None  # an earlier layer that failed has its own problem
    other = source.layer
    if not isinstance(other, ir.Recurrent):
        problems.append(doc.problem(path, f"'{name}' is a {other.kind} layer, which has no state; initial_state takes a recurrent layer's"))
        return None
    mismatch = [f"{what} {a} and {b}" for what, a, b in (
        ("kind", other.kind, layer.kind), ("units", other.units, layer.units), ("directions", other.directions, layer.directions),
    ) if a != b]
    if mismatch:
        problems.append(doc.problem(path, f"the state of '{name}' does not fit this layer: {'; '.join(mismatch)}"))
        return None
    return source.key


def _infer(index: int, key: str, section: dict[str, Any], layer: ir.Layer,
           sources: list[tuple[str, Value, tuple[Any, ...]]], state_from: str) -> tuple[ir.Node, Value]:
    values = [v for _, v, _ in sources]
    main = values[0]
    if main.tokens and not isinstance(layer, ir.Embedding):
        raise ShapeMismatch(f"expects float features, got token ids {show(main.shape)} from {main.where}; start with an embedding layer")
    if isinstance(layer, ir.Embedding) and not main.tokens:
        raise ShapeMismatch(f"expects token ids (an int64 input), got {show(main.shape)} from {main.where}")
    for other in values[1:]:
        if other.tokens:
            raise ShapeMismatch(f"expects float features, got token ids {show(other.shape)} from {other.where}")
    shapes = tuple(v.shape for v in values)
    if isinstance(layer, ir.Embedding) and len(main.shape) == 1:  # one id per sample: a category
        out: ir.Shape = (ir.BATCH, layer.dim)
    else:
        out = layer.output_shapes(shapes)
    if layer.merges and len(out) == 3:
        _same_steps(layer, values)
    params = tuple(layer.params_for(f"layers.{index}", shapes))
    time, lengths = _time_and_lengths(key, layer, values, out)
    node = ir.Node(index, layer, shapes[0], out, params, masked=main.lengths is not None, name=section.get("name") or "",
                   sources=tuple(k for k, _, _ in sources), input_shapes=shapes, state_from=state_from)
    return node, Value(out, False, time, lengths, _label(key))


def _same_steps(layer: ir.Layer, values: list[Value]) -> None:
    """Sequences merged step by step must be one time axis with one lengths."""
    first = values[0]
    for other in values[1:]:
        if other.time != first.time or other.lengths != first.lengths:
            axis = lambda v: f"{v.where} {show(v.shape)} (time axis of {_label(v.time or '?')}" + (  # noqa: E731
                f", lengths of {_label(v.lengths)})" if v.lengths else ")")
            raise ShapeMismatch(
                f"{layer.kind} merges sequences step by step, but {axis(first)} and {axis(other)} are different sequences; "
                "pool or take the last step of one, or repeat_vector with like:")


def _time_and_lengths(key: str, layer: ir.Layer, values: list[Value], out: ir.Shape) -> tuple[str | None, str | None]:
    main = values[0]
    if len(out) != 3:
        return None, None
    match layer:
        case ir.Embedding():
            return main.time, main.lengths or (main.time if layer.mask_zero else None)  # the input's lengths
        case ir.Conv1D():
            same_steps = layer.padding == "same" and layer.stride == 1
            return (main.time if same_steps else key), (key if main.lengths else None)
        case ir.RepeatVector():
            return (values[1].time, values[1].lengths) if layer.like else (key, None)
        case ir.Attention():
            query = values[1]  # a sequence output needs a sequence query
            return query.time, query.lengths
        case _:
            return main.time, main.lengths


def _outputs(doc: Document, outputs: dict[str, Any], losses: dict[str, ir.Loss], nodes: list[ir.Node],
             declared: dict[str, int], broken: set[str], problems: list[Problem]) -> list[ir.Output]:
    by_name = {n.name: n for n in nodes if n.name}
    result = []
    for name, section in outputs.items():
        node = by_name.get(name)
        if node is None:
            if name not in declared:
                hint = did_you_mean(name, list(declared))
                problems.append(doc.problem(("outputs", name), f"output '{name}' names no layer{hint}; an output is a layer's name",
                                            key=True))
            continue
        feedback = section.get("feedback")
        if isinstance(feedback, str):
            feedback = {"input": feedback}
        result.append(ir.Output(
            name=name, node=node.index, loss=losses[name], loss_weight=float(section.get("loss_weight", 1.0)),
            metrics=tuple(section.get("metrics", ())),
            feedback=ir.Feedback(**feedback) if feedback is not None else None,
        ))
    return result
