"""Spec file -> `ir.Model`: load with positions, apply overrides, validate, build.

This is the front door of the pipeline. `load_model` reports every problem in a spec
together as one `SpecError`: the JSON Schema's first, then the semantic and shape rules
for each section that passed the schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import build, ir
from .errors import Problem, SpecError
from .loader import Document, load_file, load_text
from .overrides import apply_overrides
from .schema import schema_problems
from .shapes import infer_nodes
from .shapes import show_dims
from .validate import Parts, input_shape_matches_dtype, semantic_problems


def load_model(path: str | Path, overrides: Sequence[str] = ()) -> ir.Model:
    """Read, check and compile the spec at `path`; data paths resolve against its folder."""
    doc = apply_overrides(load_file(path), overrides)
    return compile_document(doc, Path(path).resolve().parent)


def model_from_mapping(mapping: dict[str, Any], origin: str = "<spec>", base: str | Path = ".") -> ir.Model:
    """Compile spec data already in memory (notebooks, tests); `base` resolves data paths."""
    doc = load_text(json.dumps(mapping), origin)
    return compile_document(doc, Path(base).resolve())


def model_from_text(text: str, origin: str = "<spec>", base: str | Path = ".", overrides: Sequence[str] = ()) -> ir.Model:
    doc = apply_overrides(load_text(text, origin), overrides)
    return compile_document(doc, Path(base).resolve())


def spec_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _sections_with_problems(problems: list[Problem]) -> set[str]:
    """Top-level sections that failed the schema ("" when the whole file did)."""
    return {p.section for p in problems}


def _build_parts(doc: Document, base: Path, bad: set[str]) -> Parts:
    data = doc.data
    parts = Parts(doc, base)
    ok = lambda section: section not in bad and "" not in bad  # noqa: E731
    if ok("input"):
        parts.input = build.build_input(data["input"])
    if ok("layers"):
        parts.layers = [build.build_layer(layer) for layer in data["layers"]]
    if ok("loss"):
        parts.loss = build.build_loss(data["loss"])
    if ok("metrics"):
        parts.metrics = tuple(data.get("metrics", ()))
    if ok("training"):
        parts.training = build.build_training(data.get("training", {}))
    if ok("data"):
        parts.data = build.build_data(data.get("data", {}), base)
    if ok("export"):
        parts.export = build.build_export(data.get("export", {}))
    return parts


def _shape_problems(parts: Parts) -> list[Problem]:
    if parts.input is None or parts.layers is None or input_shape_matches_dtype(parts):
        return []  # an input that contradicts its dtype would only make every layer complain
    nodes, mismatches = infer_nodes(parts.input, parts.layers)
    parts.nodes = nodes
    return [parts.doc.problem(("layers", index), message) for index, message in mismatches]


def compile_document(doc: Document, base: Path) -> ir.Model:
    seen = {(p.origin, p.line, p.column) for p in doc.problems}
    # a value refused while loading is None now; the schema's word on it would repeat that
    schema = schema_problems(doc)
    problems = doc.problems + [p for p in schema if (p.origin, p.line, p.column) not in seen]
    if not isinstance(doc.data, dict):
        raise SpecError(problems)
    if doc.data.get("rnnc") == 2:
        return compile_graph(doc, base, problems, _sections_with_problems(problems + schema))
    # a section the schema refused is not built, even where its word was not repeated
    parts = _build_parts(doc, base, _sections_with_problems(problems + schema))
    problems += _shape_problems(parts)
    problems += semantic_problems(parts)
    if problems:
        raise SpecError(problems)
    data = doc.data
    assert parts.input and parts.nodes is not None and parts.loss and parts.training and parts.data and parts.export
    return ir.Model(
        name=data["name"],
        description=data.get("description", ""),
        input=parts.input,
        nodes=tuple(parts.nodes),
        loss=parts.loss,
        optimizer=build.build_optimizer(data["optimizer"]),
        metrics=parts.metrics or (),
        training=parts.training,
        data=parts.data,
        export=parts.export,
        spec_hash=spec_hash(data),
    )


def resolved_spec(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The spec data after overrides, as written into a run directory."""
    doc = apply_overrides(load_file(path), overrides)
    if doc.problems:
        raise SpecError(doc.problems)
    return copy.deepcopy(doc.data)


def compile_graph(doc: Document, base: Path, problems: list[Problem], bad: set[str]) -> ir.Model:
    """Spec version 2: the sections built, the graph inferred (`rnnc.graph`), its rules
    checked (`rnnc.graph_rules`); every problem raised together."""
    from .graph import infer_graph
    from .graph_rules import GraphParts, graph_problems

    data = doc.data
    ok = lambda section: section not in bad and "" not in bad  # noqa: E731
    problems = _v1_keys(_wiring_problems(doc, problems))
    parts = GraphParts(doc, base)
    if ok("inputs"):
        parts.inputs = {name: build.build_graph_input(name, section) for name, section in data["inputs"].items()}
        problems += [p for name, inp in parts.inputs.items() if (p := _input_problem(doc, inp))]
    if ok("outputs"):
        parts.losses = {name: build.build_loss(section["loss"]) for name, section in data["outputs"].items()}
    if ok("training"):
        parts.training = build.build_training(data.get("training", {}))
    if ok("data"):
        parts.data = build.build_data(data.get("data", {}), base)
    if ok("export"):
        parts.export = build.build_export(data.get("export", {}))
    if ok("layers") and parts.inputs is not None:
        layers = [build.build_layer(layer) for layer in data["layers"]]
        # an input whose shape contradicts its dtype is left out: what reads it is not checked
        bad_inputs = {p.json_path[1] for p in problems if p.json_path[:1] == ("inputs",) and len(p.json_path) > 1}
        result = infer_graph(doc, parts.inputs, layers, data["outputs"] if parts.losses is not None else None,
                             parts.losses or {}, bad_inputs)
        problems += result.problems
        parts.nodes, parts.outputs, parts.warnings = result.nodes, result.outputs, result.warnings
        parts.values, parts.complete = result.values, not result.problems
    problems += graph_problems(parts)
    if problems:
        raise SpecError(problems)
    assert parts.inputs and parts.nodes and parts.outputs and parts.training and parts.data and parts.export
    first = parts.outputs[0]
    graph = ir.Graph(tuple(parts.inputs.values()), tuple(parts.outputs), tuple(_warning(w) for w in parts.warnings))
    return ir.Model(
        name=data["name"],
        description=data.get("description", ""),
        input=graph.inputs[0],
        nodes=tuple(parts.nodes),
        loss=first.loss,
        optimizer=build.build_optimizer(data["optimizer"]),
        metrics=first.metrics,
        training=parts.training,
        data=parts.data,
        export=parts.export,
        spec_hash=spec_hash(data),
        graph=graph,
    )


def _warning(problem: Problem) -> str:
    """`file:line:col: warning: path: message`, as compilers print theirs."""
    where = problem.origin + (f":{problem.line}:{problem.column}" if problem.line is not None else "")
    return str(Problem(where, None, None, "", f"warning: {problem.path}: {problem.message}"))


_V1_KEYS = {  # what a v1 chain's top-level key is in version 2
    "input": "version 2 names its inputs: inputs: {NAME: {shape: [...]}}",
    "loss": "in version 2 each output has its loss: outputs: {LAYER_NAME: {loss: ...}}",
    "metrics": "in version 2 each output has its metrics: outputs: {LAYER_NAME: {loss: ..., metrics: [...]}}",
}


def _v1_keys(problems: list[Problem]) -> list[Problem]:
    """A v1 chain's `input`, `loss` and `metrics` in a v2 file say what version 2 writes instead."""
    out = []
    for p in problems:
        key = p.message.removeprefix("unknown setting '").split("'")[0] if p.json_path == () else ""
        if key in _V1_KEYS and p.message.startswith(f"unknown setting '{key}'"):
            p = Problem(p.origin, p.line, p.column, p.path, f"unknown setting '{key}': {_V1_KEYS[key]}", p.json_path)
        out.append(p)
    return out


def _wiring_problems(doc: Document, problems: list[Problem]) -> list[Problem]:
    """One line per layer whose `input:` the schema refused, where its two alternatives
    (a name; a list of at least two) would each say why the value is neither."""
    from .graph import merge_needs_two, one_value_only

    refused = {p.json_path[1] for p in problems
               if p.json_path[:1] == ("layers",) and p.json_path[2:3] == ("input",) and p.message.startswith("expected ")}
    if not refused:
        return problems
    kept = [p for p in problems if not (p.json_path[:1] == ("layers",) and p.json_path[1] in refused
                                        and p.json_path[2:3] == ("input",) and p.message.startswith("expected "))]
    for index in sorted(refused):
        section = doc.data["layers"][index]
        value, kind, path = section["input"], section.get("type"), ("layers", index, "input")
        merges = isinstance(kind, str) and kind in ir.ALL_KINDS and ir.ALL_KINDS[kind].merges
        if isinstance(value, list) and (bad := [j for j, v in enumerate(value) if not isinstance(v, str)]):
            kept += [doc.problem((*path, j), "expected the name of an input or an earlier layer") for j in bad]
        elif isinstance(value, list) and merges:
            kept.append(doc.problem(path, merge_needs_two(kind)))
        elif isinstance(value, list) and isinstance(kind, str):
            kept.append(doc.problem(path, one_value_only(kind)))
        else:
            got = "a mapping" if isinstance(value, dict) else json.dumps(value)
            kept.append(doc.problem(path, "expected the name of an input or an earlier layer (a list of names for "
                                          f"concatenate, add, multiply and average), got {got}"))
    return kept


def _input_problem(doc: Document, inp: ir.Input) -> Problem | None:
    shape, path = inp.shape, ("inputs", inp.name, "shape")
    if inp.dtype == "int64" and len(shape) > 1:
        return doc.problem(path, f"token ids (dtype int64) take shape [timesteps] or [] (one id), got {show_dims(shape)}")
    if inp.dtype == "float32" and not shape:
        return doc.problem(path, "float input takes shape [timesteps, features] or [features], got []")
    if inp.dtype == "float32" and len(shape) == 1 and shape[0] is None:
        return doc.problem(path, "static features [features] need a size; a sequence is [timesteps, features]")
    return None
