"""What `rnnc check` reads of a Parquet data set: its footers, never its pages.

Each file's footer gives its row count and its columns' arrow types; from them each
column gets the shape a padded `.npz` array would have, with the one thing a footer
cannot tell, a sequence's number of steps, taken as the spec's (or 1 where the spec
leaves it open): `x` as `list<fixed_size_list<float, F>>` is `[N, T, F]`, a scalar
column `[N]`, a fixed-size list `[N, U]`. Those shapes then meet the very rules a
`.npz`'s headers meet (`rnnc.data_peek`): a chain's x, y, lengths, classes; a graph's
names and layouts (`rnnc.graph_layout`). A list of steps whose width only the pages
tell (`list<list<float>>`) is taken to have the width the spec wants. Values, and the
steps themselves, stay training's to check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import ir
from .data_parquet import CLASSES_KEY, open_file, parquet_files, pyarrow, type_problem
from .errors import DataError
from .npy_header import Header

Shape = tuple[int | None, ...]


def footer_layout(path: Path, origin: str) -> tuple[int, dict[str, tuple[Shape, np.dtype]], dict[str, int]]:
    """(rows, name -> (shape with None for what only the pages tell, numpy dtype),
    constants: name -> how many class names) of the data set at `path`, from its footers."""
    pa, _ = pyarrow()
    files = parquet_files(path)
    rows, layout, constants = 0, {}, {}
    for file in files:
        handle = open_file(file)
        schema = handle.schema_arrow
        rows += handle.metadata.num_rows
        for name in schema.names:
            kind = schema.field(name).type
            if problem := type_problem(pa, kind):
                raise DataError(f"{origin}: column '{name}' {problem}")
            if name not in layout:
                layout[name] = _shape(pa, kind)
            elif layout[name] != _shape(pa, kind):
                raise DataError(f"{file}: column '{name}' is {kind}, unlike in {files[0]}")
        if raw := (schema.metadata or {}).get(CLASSES_KEY):
            constants.update({k: len(v) for k, v in json.loads(raw).items()})
    return rows, {k: ((rows, *s), d) for k, (s, d) in layout.items()}, constants


def _shape(pa: Any, kind: Any) -> tuple[Shape, np.dtype]:
    dims: list[int | None] = []
    while not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        dims.append(kind.list_size if pa.types.is_fixed_size_list(kind) else None)
        kind = kind.value_type
    return tuple(dims), np.dtype(kind.to_pandas_dtype())


def filled(shape: Shape, model: ir.Model, name: str) -> tuple[int, ...]:
    """`shape` with what only the pages tell taken as the spec wants it."""
    if model.graph is None:
        wanted: tuple[int | None, ...] = model.input.shape if name == "x" else ()
    else:
        inp = next((i for i in model.inputs if i.name == name), None)
        wanted = inp.shape if inp is not None else ()
    out = []
    for axis, d in enumerate(shape[1:]):
        given = wanted[axis] if axis < len(wanted) else None
        out.append(d if d is not None else (given if isinstance(given, int) else 1))
    return (int(shape[0] or 0), *out)


def peek_headers(model: ir.Model, path: Path, origin: str) -> dict[str, Header]:
    """The data set's columns as the `.npy` headers a padded `.npz` of it would have
    (class names as a string array of their count), for `rnnc.data_peek`'s rules."""
    from .dataset import output_steps
    from .graph_layout import flow, input_steps, output_node

    _, layout, constants = footer_layout(path, origin)
    shapes = {name: filled(shape, model, name) for name, (shape, _) in layout.items()}
    if model.graph is None and "y" in shapes and "x" in shapes and len(shapes["x"]) > 1 and len(layout["y"][0]) > 1:
        if layout["y"][0][1] is None:  # per-step targets: the steps the output has for x's
            shapes["y"] = (shapes["y"][0], int(output_steps(model, shapes["x"][1])), *shapes["y"][2:])
    elif model.graph is not None:
        present = {i.name for i in model.inputs if i.name in shapes}
        steps = input_steps(model, {n: shapes[n] for n in present})
        values = flow(model, steps, {})
        for out in model.outputs:
            out_steps = values[output_node(model, out).key][0]
            if out.name in shapes and len(shapes[out.name]) > 1 and layout[out.name][0][1] is None and out_steps is not None:
                shapes[out.name] = (shapes[out.name][0], out_steps, *shapes[out.name][2:])
    headers = {name: Header(shapes[name], False, dtype, 0) for name, (_, dtype) in layout.items()}
    headers.update({name: Header((count,), False, np.dtype("U1"), 0) for name, count in constants.items()})
    return headers
