"""The `rnnc check` summary: one row per layer (as its kind describes itself) with its
output shape and parameters.

A graph (spec version 2) gets one row per input and per layer, with the layer's name
and what it reads (its `input:` values, then each reference setting as `query: NAME`,
and `<- NAME.state` for its initial state), then a table of its outputs with their
loss, weight in the sum, metrics and feedback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from . import ir
from .shapes import show


def summary(model: ir.Model, origin: str) -> str:
    if model.graph is not None:
        return graph_summary(model, origin)
    rows = [("", "input", show(model.input.tensor_shape) + f" {model.input.dtype}", "")]
    rows += [(str(n.index), n.layer.describe(), show(n.output_shape), f"{n.param_count:,}") for n in model.nodes]
    header = ("#", "layer", "output shape", "params")
    table = _table(header, rows, right=(0, 3))
    tail = f"loss {model.loss.type}, optimizer {model.optimizer.type} (lr {model.optimizer.lr:g})"
    return "\n".join([
        _title(model, origin), *table, table[1],
        f"total params: {model.param_count:,}   {tail}",
    ])


def graph_summary(model: ir.Model, origin: str) -> str:
    assert model.graph is not None
    rows = [("", inp.name, "input", "", show(inp.tensor_shape) + f" {inp.dtype}", "") for inp in model.graph.inputs]
    rows += [(str(n.index), n.name, n.layer.describe(), _reads(n), show(n.output_shape), f"{n.param_count:,}")
             for n in model.nodes]
    table = _table(("#", "name", "layer", "reads", "output shape", "params"), rows, right=(0, 5))
    adapted = sum(p.size for p in model.params if not p.trainable)
    total = f"total params: {model.param_count:,}" + (f" ({adapted:,} computed from the training data)" if adapted else "")
    outputs = _outputs(model)
    return "\n".join([
        _title(model, origin), *table, table[1],
        f"{total}   optimizer {model.optimizer.type} (lr {model.optimizer.lr:g})",
        "", *outputs,
    ])


def _title(model: ir.Model, origin: str) -> str:
    extras = []
    if model.variable_length:
        extras.append("variable length")
    if model.export.streaming:
        extras.append("streaming export")
    return f"{model.name}  ({origin})" + (f"  [{', '.join(extras)}]" if extras else "")


def _reads(node: ir.Node) -> str:
    """`enc, profile`; `encoder, query: decoder`; `a_emb <- encoder.state`."""
    settings = [f.name for f in dataclasses.fields(node.layer)  # type: ignore[arg-type]
                if f.metadata.get("setting", {}).get("reference") and getattr(node.layer, f.name)]
    main = node.sources[: len(node.sources) - len(settings)]
    named = [f"{setting}: {value}" for setting, value in zip(settings, node.sources[len(main):])]
    return ", ".join([*main, *named]) + (f" <- {node.state_from}.state" if node.state_from else "")


def _outputs(model: ir.Model) -> list[str]:
    by_index = {n.index: n for n in model.nodes}
    rows = []
    for out in model.outputs:
        loss = out.loss.type + (" (from logits)" if out.loss.from_logits else "")
        if out.loss.type == "huber":
            loss += f" (delta {out.loss.delta:g})"
        feedback = ""
        if (fb := out.feedback) is not None:
            decoding = [f"{k} {getattr(fb, k)}" for k in ("start", "end", "max_length") if getattr(fb, k) is not None]
            feedback = fb.input + (f" ({', '.join(decoding)})" if decoding else "")
        rows.append((out.name, show(by_index[out.node].output_shape), loss, f"{out.loss_weight:g}",
                     ", ".join(out.metrics) or "-", feedback))
    header = ("output", "shape", "loss", "weight", "metrics", "feedback")
    if not any(r[5] for r in rows):
        header, rows = header[:5], [r[:5] for r in rows]
    table = _table(header, rows, right=(3,))
    return [table[0], *table[2:]]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: tuple[int, ...]) -> list[str]:
    """The header, a rule and the rows, in columns two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return [line(header), "-" * len(line(header)), *map(line, rows)]
