"""The semantic rule of `training.tbptt`: where training in chunks of K steps means something.

Truncated backpropagation runs the model chunk by chunk with the recurrent state
carried across, so every layer must run chunk by chunk (each kind's
`streaming_problem`, the rule `export.streaming` reads too), and the model's output
must be one per step, so that every chunk has steps of its own to learn from: a layer
that turns a sequence into one vector (`return_sequences: false`, `pool`) leaves
nothing for the chunks before the last. K larger than every sequence is fine: each
batch is one chunk. A graph (spec version 2) asks the same of every output, and
refuses a layer started from another layer's state, which only the first chunk would
see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ir
from .errors import Problem
from .layers.base import show

if TYPE_CHECKING:
    from .graph_rules import GraphParts
    from .validate import Parts


def chain_fits_tbptt(parts: Parts) -> list[Problem]:
    """A chain (spec version 1) trained with `training.tbptt`."""
    if parts.training is None or parts.training.tbptt is None or parts.layers is None:
        return []
    size = parts.training.tbptt
    problems = [parts.doc.problem(("layers", i), _chunk_message(reason, size))
                for i, layer in enumerate(parts.layers) if (reason := layer.streaming_problem())]
    nodes = parts.nodes or []
    if len(nodes) == len(parts.layers) and (node := _first_without_time(nodes)) is not None:
        problems.append(_not_per_step(parts, node, size))
    return problems


def graph_fits_tbptt(parts: GraphParts) -> list[Problem]:
    """A graph (spec version 2) trained with `training.tbptt`: each output per step."""
    if parts.training is None or parts.training.tbptt is None or parts.nodes is None:
        return []
    size = parts.training.tbptt
    problems = []
    for node in parts.nodes:
        if reason := node.layer.streaming_problem():
            problems.append(parts.doc.problem(("layers", node.index), _chunk_message(reason, size)))
        elif node.state_from:
            problems.append(parts.doc.problem(
                ("layers", node.index, "initial_state"),
                f"training.tbptt ({size}) runs each sequence in chunks, and a layer started from another layer's "
                "state would start there again in every chunk: drop initial_state or training.tbptt"))
    if problems or not parts.complete or parts.outputs is None:
        return problems
    by_index = {n.index: n for n in parts.nodes}
    for out in parts.outputs:
        node = by_index[out.node]
        if len(node.output_shape) != 3:
            culprit = _first_without_time(_ancestors(parts.nodes, node)) or node
            problems.append(_not_per_step(parts, culprit, size, f"output '{out.name}'"))
    return problems


def _chunk_message(reason: str, size: int) -> str:
    return f"training.tbptt ({size}) trains chunk by chunk, and {reason}: drop training.tbptt, or change this layer"


def _first_without_time(nodes: list[ir.Node]) -> ir.Node | None:
    """The first node that turns a sequence into one vector per sample."""
    return next((n for n in nodes if len(n.input_shape) == 3 and len(n.output_shape) == 2), None)


def _ancestors(nodes: list[ir.Node], node: ir.Node) -> list[ir.Node]:
    """`node` and every node it reads, directly or not, in spec order."""
    by_key = {n.key: n for n in nodes}
    seen = {node.index}
    todo = [node]
    while todo:
        for key in todo.pop().sources:
            if key in by_key and by_key[key].index not in seen:
                seen.add(by_key[key].index)
                todo.append(by_key[key])
    return [n for n in nodes if n.index in seen]


def _not_per_step(parts: Parts, node: ir.Node, size: int, what: str = "the output") -> Problem:
    layer = node.layer
    if isinstance(layer, ir.Recurrent) and not layer.return_sequences:
        path: tuple[str | int, ...] = ("layers", node.index, "return_sequences")
        cause, fix = "returns one vector per sequence", "set return_sequences: true"
    else:
        path = ("layers", node.index)
        cause, fix = f"turns each sequence into one vector ({show(node.input_shape)} -> {show(node.output_shape)})", "keep the time axis"
    if not _has(parts, path):
        path = path[:2]
    return parts.doc.problem(path, (
        f"{cause}, so {what} is not one per step and the chunks of training.tbptt ({size}) before the last would "
        f"have nothing to learn from: {fix}, or drop training.tbptt"))


def _has(parts: Parts, path: tuple[str | int, ...]) -> bool:
    data = parts.doc.data
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True
