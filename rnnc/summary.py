"""The `rnnc check` summary: one row per layer (as its kind describes itself) with its
output shape and parameters."""

from __future__ import annotations

from . import ir
from .shapes import show


def summary(model: ir.Model, origin: str) -> str:
    rows = [("", "input", show(model.input.tensor_shape) + f" {model.input.dtype}", "")]
    rows += [(str(n.index), n.layer.describe(), show(n.output_shape), f"{n.param_count:,}") for n in model.nodes]
    header = ("#", "layer", "output shape", "params")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].rjust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3].rjust(widths[3])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    extras = []
    if model.variable_length:
        extras.append("variable length")
    if model.export.streaming:
        extras.append("streaming export")
    tail = f"loss {model.loss.type}, optimizer {model.optimizer.type} (lr {model.optimizer.lr:g})"
    return "\n".join([
        f"{model.name}  ({origin})" + (f"  [{', '.join(extras)}]" if extras else ""),
        line(header), rule, *map(line, rows), rule,
        f"total params: {model.param_count:,}   {tail}",
    ])
