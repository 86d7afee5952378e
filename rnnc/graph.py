"""Spec version 2: the layers as a graph, resolved and shape-checked in one pass.

`infer_graph` reads what each layer names (`input:`, a list for merges; the settings a
kind declares `reference`, attention's `query:` and repeat_vector's `like:`;
attention's `value:`, another word for its input; `initial_state: NAME.state`),
resolves the names against the inputs and the layers before it, and infers every
node's shapes with its kind's rules (`output_shapes`, `params_for`). Beside the shapes
it follows two things no one kind knows, for every value of the graph:

- its time axis: the input (or layer) it comes from, so that sequences of different
  inputs are never merged step by step;
- its lengths: the variable-length input (or `mask_zero` embedding, or conv1d that
  changes the number of steps) whose lengths it carries, so padding never changes a
  result where sequences meet.

A layer without `input:` reads the layer before it (the first layer: the only input).
Every problem is reported at its position, with did-you-mean for unknown names. A layer
that cannot be inferred is reported once: the layers that read it are not checked
again, so one mistake does not become one error per layer after it. An input or layer
from which no output can be reached is a warning.
"""

from __future__ import annotations

import dataclasses
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
    values: dict[str, Value] = dataclasses.field(default_factory=dict)  # by key: the inputs' and the inferred nodes'


def _label(key: str) -> str:
    return key if key.startswith("layers[") else f"'{key}'"


def _reference_settings(layer: ir.Layer) -> list[str]:
    """The settings through which `layer` reads one more value (attention's `query`)."""
    return [f.name for f in dataclasses.fields(layer) if f.metadata.get("setting", {}).get("reference")]  # type: ignore[arg-type]


def infer_graph(doc: Document, inputs: dict[str, ir.Input], layers: list[ir.Layer],
                outputs: dict[str, Any] | None, losses: dict[str, ir.Loss], bad_inputs: set[str] | frozenset[str] = frozenset(),
                ) -> GraphResult:
    """Nodes, outputs and problems of a v2 spec whose sections passed the schema;
    `bad_inputs` have problems of their own, and the layers that read them are skipped."""
    sections = doc.data["layers"]
    problems: list[Problem] = []
    values: dict[str, Value] = {}
    for name, inp in inputs.items():
        if name in bad_inputs:
            continue
        values[name] = Value(inp.tensor_shape, inp.dtype == "int64", name if inp.sequence else None,
                             name if inp.variable_length else None, f"input '{name}'")
    declared: dict[str, int] = {}
    for i, section in enumerate(sections):
        name = section.get("name")
        if not isinstance(name, str):
            continue
        if name in inputs:
            problems.append(doc.problem(("layers", i, "name"), f"'{name}' names an input already; give the layer another name"))
        elif name in declared:
            problems.append(doc.problem(("layers", i, "name"), f"layers[{declared[name]}] is named '{name}' already; "
                                                               "give each layer its own name"))
        else:
            declared[name] = i

    nodes: list[ir.Node] = []
    broken: set[str] = set()  # keys whose node could not be inferred: what reads them is not checked again
    for index, (section, layer) in enumerate(zip(sections, layers)):
        key = section.get("name") or f"layers[{index}]"
        refs = _references(doc, index, section, layer, inputs, values, declared, problems)
        state_from = _initial_state(doc, index, section, layer, nodes, declared, problems)
        settled = _settings_agree(doc, index, section, layer, problems)
        if refs is None or state_from is None or not settled or any(r in broken for r, _ in refs):
            broken.add(key)
            continue
        try:
            node, value = _infer(index, key, section, layer, [(r, values[r]) for r, _ in refs], state_from)
        except ShapeMismatch as mismatch:
            problems.append(doc.problem(("layers", index), f"{mismatch}{_lost_time_axis(layer, refs[0][0], nodes)}"))
            broken.add(key)
            continue
        nodes.append(node)
        values[key] = value

    result_outputs: list[ir.Output] = []
    if outputs is not None:
        result_outputs = _outputs(doc, outputs, losses, nodes, inputs, declared, problems)
    warnings = _unused(doc, inputs, nodes, result_outputs) if not problems and outputs is not None else []
    return GraphResult(nodes, result_outputs, problems, warnings, values)


def _references(doc: Document, index: int, section: dict[str, Any], layer: ir.Layer,
                inputs: dict[str, ir.Input], values: dict[str, Value], declared: dict[str, int],
                problems: list[Problem]) -> list[tuple[str, tuple[Any, ...]]] | None:
    """The keys the layer reads, its main input(s) first, each with the spec path that
    names it; None (with problems added) when one cannot be resolved."""
    refs: list[tuple[str, tuple[Any, ...]]] = []
    main, main_path = section.get("input"), ("layers", index, "input")
    if isinstance(layer, ir.Attention) and "value" in section:
        if main is not None:
            problems.append(doc.problem(("layers", index, "value"), "give input: or value:, not both (they name the same)"))
            return None
        main, main_path = section["value"], ("layers", index, "value")
    if main is None:
        if index > 0:
            refs.append((_key(doc, index - 1), ("layers", index)))
        elif len(inputs) == 1:
            refs.append((next(iter(inputs)), ("layers", index)))
        else:
            problems.append(doc.problem(("layers", index), "with several inputs the first layer must say which it reads: "
                                                           f"add input: with one of {', '.join(inputs)}", key=True))
            return None
    elif isinstance(main, list):
        if not layer.merges:
            problems.append(doc.problem(main_path, one_value_only(layer.kind)))
            return None
        refs += [(name, (*main_path, j)) for j, name in enumerate(main)]
    else:
        refs.append((main, main_path))
    if layer.merges and len(refs) < 2:
        problems.append(doc.problem(main_path if main is not None else ("layers", index), merge_needs_two(layer.kind),
                                    key=main is None))
        return None
    refs += [(section[s], ("layers", index, s)) for s in _reference_settings(layer) if s in section]
    ok = True
    for name, path in refs:
        written = len(path) > 2  # not the layer before, which a layer without input: reads
        if written and name.startswith("layers["):
            ok = False
            problems.append(doc.problem(path, f"'{name}' is not a name: add name: to that layer and read it by its name"))
        elif name not in values:
            ok = False
            if written and (message := _unresolved(name, index, section, inputs, declared, doc)):
                problems.append(doc.problem(path, message))
    return refs if ok else None


def one_value_only(kind: str) -> str:
    return (f"{kind} reads one value, got a list; only concatenate, add, multiply and average take a list "
            "(join the values with one first)")


def merge_needs_two(kind: str) -> str:
    return f"{kind} joins several values: give input: a list of at least two names"


def _unresolved(name: str, index: int, section: dict[str, Any], inputs: dict[str, ir.Input],
                declared: dict[str, int], doc: Document) -> str:
    """Why `name` does not resolve at layer `index`; "" for an earlier layer that failed
    (its own problem is reported)."""
    if name == section.get("name"):
        return f"'{name}' is this layer itself: a layer cannot read its own output (a cycle)"
    if name in declared and declared[name] > index:
        later = doc.data["layers"][declared[name]]
        if section.get("name") in _named_reads(later):
            return (f"'{name}' is layers[{declared[name]}], which comes after this layer and reads it: a cycle; a layer "
                    "reads only inputs and earlier layers")
        return (f"'{name}' is layers[{declared[name]}], which comes after this layer; a layer reads only inputs and "
                "earlier layers: move this layer after it")
    if name in declared or name in inputs:
        return ""  # an earlier layer that failed, or an input with a problem: its own problem is reported
    if name.endswith(STATE):
        return f"'{name}' is a recurrent layer's state: pass it as initial_state, not as an input"
    known = [*inputs, *(n for n in declared if declared[n] < index)]
    return f"no input or earlier layer is named '{name}'{did_you_mean(name, known)}; known: {', '.join(known) or 'none'}"


def _named_reads(section: dict[str, Any]) -> list[str]:
    """The names a layer's section reads (for telling a cycle from a plain forward reference)."""
    main = section.get("input", section.get("value"))
    names = main if isinstance(main, list) else [main]
    return [n for n in (*names, section.get("query"), section.get("like")) if isinstance(n, str)]


def _key(doc: Document, index: int) -> str:
    section = doc.data["layers"][index]
    return section.get("name") or f"layers[{index}]"


def _settings_agree(doc: Document, index: int, section: dict[str, Any], layer: ir.Layer, problems: list[Problem]) -> bool:
    """Settings that exclude each other, which the kind's defaults cannot tell apart."""
    if isinstance(layer, ir.RepeatVector):
        if "n" in section and "like" in section:
            problems.append(doc.problem(("layers", index, "n"), "give n or like, not both: n repeats the vector a fixed "
                                                                "number of steps, like takes another sequence's steps and lengths"))
            return False
        if "like" not in section and layer.n < 1:
            problems.append(doc.problem(("layers", index, "n") if "n" in section else ("layers", index),
                                        "repeat_vector needs n: the number of steps (at least 1), or like: a sequence "
                                        "whose steps and lengths it takes", key="n" not in section))
            return False
    return True


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
        if name == section.get("name"):
            problems.append(doc.problem(path, f"'{name}' is this layer itself: its state cannot start it (a cycle)"))
        elif name in declared and declared[name] > index:
            problems.append(doc.problem(path, f"'{name}' is layers[{declared[name]}], which comes after this layer; "
                                              "initial_state takes the state of an earlier layer"))
        elif name not in declared:
            known = [n for n, i in declared.items() if i < index and isinstance(doc.data["layers"][i].get("type"), str)
                     and doc.data["layers"][i]["type"] in ir.RECURRENT_KINDS]
            problems.append(doc.problem(path, f"no earlier layer is named '{name}'{did_you_mean(name, known)}; "
                                              f"earlier recurrent layers: {', '.join(known) or 'none'}"))
        return None  # else an earlier layer that failed: its own problem is reported
    other = source.layer
    if not isinstance(other, ir.Recurrent):
        problems.append(doc.problem(path, f"'{name}' is a {other.kind} layer, which has no state; initial_state takes a recurrent layer's"))
        return None
    mismatch = [f"{what} {a} there, {b} here" for what, a, b in (
        ("kind", other.kind, layer.kind), ("units", other.units, layer.units), ("directions", other.directions, layer.directions),
    ) if a != b]
    if mismatch:
        problems.append(doc.problem(path, f"the state of '{name}' does not fit this layer ({'; '.join(mismatch)}): "
                                          "initial_state needs a layer of the same kind, units and directions"))
        return None
    return source.key


def _infer(index: int, key: str, section: dict[str, Any], layer: ir.Layer,
           sources: list[tuple[str, Value]], state_from: str) -> tuple[ir.Node, Value]:
    values = [v for _, v in sources]
    main = values[0]
    if main.tokens and not isinstance(layer, ir.Embedding):
        fix = "normalization reads float inputs only" if isinstance(layer, ir.Normalization) else "start with an embedding layer"
        raise ShapeMismatch(f"expects float features, got token ids {show(main.shape)} from {main.where}; {fix}")
    if isinstance(layer, ir.Embedding) and not main.tokens:
        raise ShapeMismatch(f"expects token ids (an int64 input), got {show(main.shape)} from {main.where}")
    for other in values[1:]:
        if other.tokens:
            raise ShapeMismatch(f"expects float features, got token ids {show(other.shape)} from {other.where}; "
                                "read them through an embedding layer")
    shapes = tuple(v.shape for v in values)
    if layer.merges and all(len(s) == 3 for s in shapes):
        _same_steps(layer, values)
    try:
        if isinstance(layer, ir.Embedding) and len(main.shape) == 1:  # one id per sample: a category
            out: ir.Shape = (ir.BATCH, layer.dim)
        else:
            out = layer.output_shapes(shapes)
    except ShapeMismatch as mismatch:
        if not layer.merges:
            raise
        raise ShapeMismatch(f"{mismatch}; its inputs: {', '.join(v.where for v in values)}") from None
    params = tuple(layer.params_for(f"layers.{index}", shapes))
    time, lengths = _time_and_lengths(key, layer, values, out)
    node = ir.Node(index, layer, shapes[0], out, params, masked=main.lengths is not None, name=section.get("name") or "",
                   sources=tuple(k for k, _ in sources), input_shapes=shapes, state_from=state_from)
    return node, Value(out, False, time, lengths, _label(key))


def _lost_time_axis(layer: ir.Layer, source: str, nodes: list[ir.Node]) -> str:
    """Why a layer that wants a sequence got a vector, when it reads a recurrent layer
    without `return_sequences` (Keras users stack LSTMs this way)."""
    node = next((n for n in nodes if n.key == source), None)
    if not layer.takes_sequences or node is None or not isinstance(node.layer, ir.Recurrent) or node.layer.return_sequences:
        return ""
    return f"; {_label(source)} returns only its last step: set return_sequences: true on it"


def _same_steps(layer: ir.Layer, values: list[Value]) -> None:
    """Sequences merged step by step must be one time axis with one lengths."""
    first = values[0]

    def axis(v: Value) -> str:
        lengths = f", lengths of {_label(v.lengths)}" if v.lengths else ", no lengths"
        return f"{v.where} {show(v.shape)} (time axis of {_label(v.time or '?')}{lengths})"

    for other in values[1:]:
        if other.time != first.time:
            raise ShapeMismatch(
                f"{layer.kind} joins sequences step by step, but {axis(first)} and {axis(other)} are steps of different "
                "sequences; reduce one to a vector first (a recurrent layer without return_sequences, pool, attention), "
                "then repeat_vector with like: to put it on the other's steps")
        if other.lengths != first.lengths:
            raise ShapeMismatch(
                f"{layer.kind} joins sequences of one time axis but different lengths: {axis(first)} and {axis(other)}; "
                "the padded steps of one would be real steps of the other")


def _time_and_lengths(key: str, layer: ir.Layer, values: list[Value], out: ir.Shape) -> tuple[str | None, str | None]:
    main = values[0]
    if len(out) != 3:
        return None, None
    match layer:
        case ir.Embedding():
            return main.time, main.lengths or (main.time if layer.mask_zero else None)  # the input's lengths
        case ir.Conv1D() if layer.padding == "same" and layer.stride == 1:
            return main.time, main.lengths  # one output step per input step, the lengths unchanged
        case ir.Conv1D():
            return key, (key if main.lengths else None)  # fewer steps: its own time axis and lengths
        case ir.RepeatVector():
            return (values[1].time, values[1].lengths) if layer.like else (key, None)
        case ir.Attention():
            query = values[1]  # a sequence output needs a sequence query
            return query.time, query.lengths
        case _:
            return main.time, main.lengths


def _outputs(doc: Document, outputs: dict[str, Any], losses: dict[str, ir.Loss], nodes: list[ir.Node],
             inputs: dict[str, ir.Input], declared: dict[str, int], problems: list[Problem]) -> list[ir.Output]:
    by_name = {n.name: n for n in nodes if n.name}
    result = []
    for name, section in outputs.items():
        node = by_name.get(name)
        if node is None:
            if name in inputs:
                problems.append(doc.problem(("outputs", name), f"'{name}' is an input; an output is a layer's name", key=True))
            elif name not in declared:
                hint = did_you_mean(name, list(declared))
                problems.append(doc.problem(
                    ("outputs", name), f"output '{name}' names no layer{hint}; an output is a layer's name: "
                                       f"{', '.join(declared) or 'give the layer a name: first'}", key=True))
            continue  # else a layer that failed: its own problem is reported
        feedback = section.get("feedback")
        if isinstance(feedback, str):
            feedback = {"input": feedback}
        result.append(ir.Output(
            name=name, node=node.index, loss=losses[name], loss_weight=float(section.get("loss_weight", 1.0)),
            metrics=tuple(section.get("metrics", ())),
            feedback=ir.Feedback(**feedback) if feedback is not None else None,
        ))
    return result


def _unused(doc: Document, inputs: dict[str, ir.Input], nodes: list[ir.Node], outputs: list[ir.Output]) -> list[Problem]:
    """A warning for each input and layer from which no output can be reached: a layer
    that nothing reads (its weights would never train), or one that only such layers read."""
    by_key = {n.key: n for n in nodes}
    needed: set[str] = set()
    todo = [n.key for n in nodes if n.index in {o.node for o in outputs}]
    while todo:
        key = todo.pop()
        if key in needed:
            continue
        needed.add(key)
        if key in by_key:
            todo += [*by_key[key].sources, *([by_key[key].state_from] if by_key[key].state_from else [])]
    read = {s for n in nodes for s in (*n.sources, n.state_from) if s}
    warnings = []
    for name in inputs:
        if name not in needed:
            what = "is not read by any layer" if name not in read else "is read only by layers that lead to no output"
            warnings.append(doc.problem(("inputs", name), f"input '{name}' {what}; remove it, or read it in a layer "
                                                          "that leads to an output", key=True))
    for node in nodes:
        if node.key not in needed:
            what = "is not read by any layer or output" if node.key not in read else "leads to no output"
            fix = "list it under outputs:" if node.name else "name it and list it under outputs:"
            warnings.append(doc.problem(("layers", node.index), f"{_label(node.name) if node.name else 'this layer'} "
                                                                f"{what}: nothing trains it; remove it, or {fix}"))
    return warnings
