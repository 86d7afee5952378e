"""What a graph's data file must hold (spec version 2), judged from array headers alone.

A graph's `.npz` names its arrays after the spec: one per input (float32 `[N, T, F]` or
`[N, F]`, int64 ids `[N, T]` or `[N]`), `<input>_lengths` for an input that takes
lengths (`rnnc.metadata.lengths_rules`), one per output holding its targets in v1's
`y` layouts, and `<output>_classes` naming a classification output's classes. An
output with `feedback: I` may leave its targets out: they are then I shifted by one
step. `layout_problems` checks names, shapes, dtypes and sample counts from
(name -> (shape, dtype)) alone, so `rnnc check` asks it of a file's headers
(`rnnc.data_peek`) and training of the loaded arrays (`rnnc.graph_data`): the rule is
written once. `flow` follows the time axis and lengths of every value of the graph
from its inputs, as the graph's inference does (`rnnc.graph`), in numbers: how many
steps a per-step output has, and which of them are real. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import ir
from .errors import JsonPath, did_you_mean
from .metadata import lengths_rules

Header = tuple[tuple[int, ...], np.dtype]  # an array's shape and dtype


@dataclass(frozen=True)
class ArrayProblem:
    """One thing wrong with a data file: `where` is the spec setting the array
    contradicts (`("inputs", name)`, `("outputs", name)`), `()` for the file itself."""

    where: JsonPath
    message: str  # one line, starting with the file


@dataclass(frozen=True)
class Role:
    """What an array of a graph's data file is: an input's values or lengths, an
    output's targets or class names (`of` names the input or output)."""

    kind: Literal["input", "lengths", "target", "classes"]
    of: str
    required: bool


def show(shape: tuple[object, ...] | list[object]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def array_roles(model: ir.Model, present: Collection[str]) -> dict[str, Role]:
    """Every array name the model reads, with its role; a target is optional where a
    feedback output's input is `present` (the targets are then that input, shifted)."""
    roles = {inp.name: Role("input", inp.name, True) for inp in model.inputs}
    rules = lengths_rules(model)
    roles.update({inp.lengths_name: Role("lengths", inp.name, False) for inp in model.inputs if inp.name in rules})
    for out in model.outputs:
        shifted = out.feedback is not None and out.feedback.input in present
        roles[out.name] = Role("target", out.name, not shifted)
        if out.loss.is_classification:
            roles[f"{out.name}_classes"] = Role("classes", out.name, False)
    return roles


def input_steps(model: ir.Model, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """The padded time axis of each sequence input, as its array's shape says."""
    return {inp.name: int(shapes[inp.name][1]) for inp in model.inputs if inp.sequence and len(shapes[inp.name]) > 1}


Lengths = np.ndarray | None


def _conv(layer: ir.Conv1D, steps: np.ndarray | int) -> np.ndarray:
    """conv1d's output steps (or lengths) for `steps` (Conv1D.out_length, elementwise)."""
    steps = np.asarray(steps, dtype=np.int64)
    if layer.padding == "same":
        return -(-steps // layer.stride)
    return np.maximum(0, (steps - layer.kernel_size) // layer.stride + 1)


def flow(model: ir.Model, steps: Mapping[str, int], lengths: Mapping[str, np.ndarray]) -> dict[str, tuple[int | None, Lengths]]:
    """For every value of the graph (inputs and nodes, by key): its padded time steps
    (None without a time axis) and its lengths (None when every step is real), given
    each sequence input's `steps` and the `lengths` each input takes (given, or from a
    `mask_zero` embedding's ids). The rules of `rnnc.graph._time_and_lengths`: per-step
    layers keep them, an embedding with mask_zero reads its input's, conv1d maps them,
    attention takes its query's, repeat_vector `like:`'s."""
    values: dict[str, tuple[int | None, Lengths]] = {}
    for inp in model.inputs:
        values[inp.name] = (steps.get(inp.name) if inp.sequence else None, lengths.get(inp.name) if inp.variable_length else None)
    for node in model.nodes:
        main_steps, main_lengths = values[node.sources[0]]
        if len(node.output_shape) != 3:
            values[node.key] = (None, None)
            continue
        match node.layer:
            case ir.Embedding(mask_zero=masked):
                own = lengths.get(node.sources[0]) if masked else None
                values[node.key] = (main_steps, main_lengths if main_lengths is not None else own)
            case ir.Conv1D() as conv:
                values[node.key] = (
                    None if main_steps is None else int(_conv(conv, main_steps)),
                    None if main_lengths is None else _conv(conv, main_lengths),
                )
            case ir.RepeatVector(like=like, n=n):
                values[node.key] = values[node.sources[1]] if like else (n, None)
            case ir.Attention():
                values[node.key] = values[node.sources[1]]  # the query's
            case _:
                values[node.key] = (main_steps, main_lengths)
    return values


def _input(model: ir.Model, name: str) -> ir.Input:
    return next(i for i in model.inputs if i.name == name)


def output_node(model: ir.Model, out: ir.Output) -> ir.Node:
    return next(n for n in model.nodes if n.index == out.node)


# --- the layout of a file, from (name -> (shape, dtype)) ------------------------------


def layout_problems(model: ir.Model, arrays: Mapping[str, Header], origin: str) -> list[ArrayProblem]:
    """Every problem of a graph's data file that its arrays' shapes and dtypes show:
    missing and unexpected arrays, shapes and dtypes that do not fit the spec, sample
    counts that differ. Value checks (NaN, ids, lengths) need the arrays themselves."""
    roles = array_roles(model, arrays)
    problems = _names(model, roles, arrays, origin)
    known = {name: header for name, header in arrays.items() if name in roles}
    problems += _counts({n: h for n, h in known.items() if roles[n].kind != "classes"}, origin)
    inputs_ok = True
    for name, (shape, dtype) in known.items():
        role = roles[name]
        if role.kind == "input":
            message = _input_problem(_input(model, name), name, shape, dtype)
            if message:
                inputs_ok = False
                problems.append(ArrayProblem(("inputs", name), f"{origin}: {message}"))
        elif role.kind == "lengths" and (message := _lengths_problem(name, shape, dtype)):
            problems.append(ArrayProblem(("inputs", role.of), f"{origin}: {message}"))
        elif role.kind == "classes" and (message := _classes_problem(model, role.of, name, shape, dtype)):
            problems.append(ArrayProblem(("outputs", role.of), f"{origin}: {message}"))
    # a per-step output's steps follow from the inputs' shapes: judged only when they fit
    inputs_ok = inputs_ok and all(inp.name in arrays for inp in model.inputs)
    values = flow(model, input_steps(model, {n: h[0] for n, h in known.items()}), {}) if inputs_ok else {}
    for out in model.outputs:
        node = output_node(model, out)
        if len(node.output_shape) == 3 and not inputs_ok:
            continue
        steps = values[node.key][0] if inputs_ok else None
        if out.name in known:
            shape, dtype = known[out.name]
            if message := target_problem(out, node, out.name, shape, dtype, steps):
                problems.append(ArrayProblem(("outputs", out.name), f"{origin}: {message}"))
        elif out.feedback is not None and out.feedback.input in known and len(node.output_shape) == 3:
            source = out.feedback.input
            source_steps = values[source][0]
            if steps != source_steps:
                problems.append(ArrayProblem(("outputs", out.name, "feedback"), (
                    f"{origin}: no array '{out.name}', and its targets cannot be '{source}' shifted: output "
                    f"'{out.name}' has {steps} steps, '{source}' {source_steps}")))
    return problems


def _names(model: ir.Model, roles: Mapping[str, Role], arrays: Collection[str], origin: str) -> list[ArrayProblem]:
    have = ", ".join(sorted(arrays)) or "none"
    problems = []
    for name, role in roles.items():
        if name in arrays or not role.required:
            continue
        if role.kind == "input":
            inp = _input(model, name)
            what = f"input '{name}' {_wanted_input(inp)}"
            where: JsonPath = ("inputs", name)
        else:
            out = next(o for o in model.outputs if o.name == name)
            what = f"the targets of output '{name}'" + (
                f", or input '{out.feedback.input}' to shift" if out.feedback is not None else "")
            where = ("outputs", name)
        problems.append(ArrayProblem(where, f"{origin}: no array '{name}' ({what}); arrays: {have}"))
    for name in sorted(set(arrays) - set(roles)):
        hint = did_you_mean(name, list(roles))
        problems.append(ArrayProblem((), (
            f"{origin}: unexpected array '{name}'{hint}; this spec reads: {', '.join(roles)}")))
    return problems


def _counts(arrays: Mapping[str, Header], origin: str) -> list[ArrayProblem]:
    """Every array has one row per sample, as many as the first one."""
    rows = [(name, shape) for name, (shape, _) in arrays.items()]
    scalars = [ArrayProblem((), f"{origin}: '{name}' is a scalar, expected one row per sample") for name, shape in rows if not shape]
    sized = [(name, shape[0]) for name, shape in rows if shape]
    if scalars or not sized:
        return scalars
    first, count = sized[0]
    if count == 0:
        return [ArrayProblem((), f"{origin}: holds no samples ('{first}' has 0 rows)")]
    return [ArrayProblem((), f"{origin}: '{name}' has {n} samples but '{first}' has {count}") for name, n in sized[1:] if n != count]


def _wanted_input(inp: ir.Input) -> str:
    dims = ["N", *("T" if d is None else d for d in inp.shape)]
    return f"{inp.dtype} {show(dims)}"


def _input_problem(inp: ir.Input, name: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    want = _wanted_input(inp)
    if len(shape) != 1 + len(inp.shape):
        return f"'{name}' has shape {show(shape)}, input '{name}' needs {want}"
    if inp.sequence and inp.shape[0] is not None and shape[1] != inp.shape[0]:
        return f"'{name}' has {shape[1]} timesteps, input '{name}' needs {inp.shape[0]} ({want})"
    if inp.dtype == "float32" and shape[-1] != inp.shape[-1]:
        return f"'{name}' has {shape[-1]} features, input '{name}' needs {inp.shape[-1]} ({want})"
    if inp.dtype == "int64" and dtype.kind not in "iu":
        return f"'{name}' has dtype {dtype}, input '{name}' needs integer token ids (int64)"
    if inp.dtype == "float32" and dtype.kind not in "fiub":
        return f"'{name}' has dtype {dtype}, input '{name}' needs numbers (float32)"
    return ""


def _lengths_problem(name: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    if len(shape) != 1:
        return f"'{name}' has shape {show(shape)}, expected one length per sample [N]"
    if dtype.kind not in "iu":
        return f"'{name}' has dtype {dtype}, expected integers"
    return ""


def classes_wanted(out: ir.Output, node: ir.Node) -> int:
    """How many class names an output has: its units, 2 for one binary unit."""
    units = node.output_shape[-1]
    assert isinstance(units, int)
    return 2 if out.loss.type == "binary_crossentropy" and units == 1 else units


def _classes_problem(model: ir.Model, output: str, name: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    out = next(o for o in model.outputs if o.name == output)
    if len(shape) != 1 or dtype.kind not in "US":
        return f"'{name}' must be a 1-D array of names, got {dtype} {show(shape)}"
    wanted = classes_wanted(out, output_node(model, out))
    return f"'{name}' names {shape[0]} classes, output '{output}' has {wanted}" if shape[0] != wanted else ""


def target_problem(out: ir.Output, node: ir.Node, name: str, shape: tuple[int, ...], dtype: np.dtype, steps: int | None) -> str:
    """Why `shape` and `dtype` cannot be the targets of `out` (v1's `y` layouts over the
    output's node), or ""; `steps` is the output's padded time axis."""
    out_shape = node.output_shape
    units = out_shape[-1]
    if len(out_shape) not in (2, 3) or not isinstance(units, int) or not shape:
        return "" if shape else f"'{name}' is a scalar, expected one row per sample"
    lead = (shape[0], steps) if len(out_shape) == 3 else (shape[0],)
    loss = out.loss.type
    what = f"{loss} over output '{out.name}' {show(['time' if d == ir.TIME else d for d in out_shape[1:]])}"
    if loss == "sparse_categorical_crossentropy":
        allowed, wanted = [lead, (*lead, 1)], f"integer class ids {show(['N', *lead[1:]])}"
    elif loss == "categorical_crossentropy":
        allowed, wanted = [(*lead, units)], f"one-hot {show(['N', *lead[1:], units])}"
    else:
        allowed = [(*lead, units)] + ([lead] if units == 1 else [])
        wanted = " or ".join(show(["N", *s[1:]]) for s in reversed(allowed))
    if tuple(shape) not in allowed:
        return f"'{name}' has shape {show(shape)}, {what} needs {wanted}"
    if dtype.kind not in "fiub":
        return f"'{name}' has dtype {dtype}, expected numbers"
    return ""
