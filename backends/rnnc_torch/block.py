"""What every torch block is: the `Block` interface, and the helpers for lengths.

A block is one spec layer (or, for fused recurrent layers, several) as an `nn.Module`
whose `forward(x, lengths)` returns `(y, lengths)`: `lengths` is an int64 `[batch]`
tensor of real steps on `x`'s device, or None for full-length sequences. Each block
names its parameters as the IR does (`ir_parameters`), and `initialise` draws them by
their rules (rnnc.initial: the layer's or the spec's `initializer`). The blocks
themselves are in `layers` and `recurrent`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rnnc import ir
from rnnc.initial import Rule, forget_quarter, rule, scheme_of


def exporting() -> bool:
    """Whether `torch.export` is tracing this call (older torch, without the query, never
    exports an rnnc model: its .pt2 export needs torch's scan operator)."""
    query = getattr(torch.compiler, "is_exporting", None)
    return bool(query is not None and query())


def step_mask(lengths: Tensor, steps: int) -> Tensor:
    """`[batch, steps]` bool, True at real steps."""
    return torch.arange(steps, device=lengths.device) < lengths[:, None]


def zero_padding(x: Tensor, lengths: Tensor) -> Tensor:
    """`x` `[batch, time, ...]` with the steps past each sequence's length set to zero."""
    mask = step_mask(lengths, x.shape[1])
    return x.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - 2))), 0.0)


def lengths_from_ids(ids: Tensor) -> Tensor:
    """`mask_zero`'s lengths: the position after the last non-zero id of each row."""
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    return ((ids != 0) * positions).amax(dim=1) if ids.shape[1] else ids.new_zeros(ids.shape[0])


class Block(nn.Module):
    """One or more spec layers lowered to torch; see the module docstring."""

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        """The block's parameters under their IR names (`layers.<i>.<param>`)."""
        return {}

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError


def initialise(blocks: Iterable[Block], model: ir.Model) -> None:
    """Every block's parameters drawn by their rules, block by block in the IR's
    parameter order (deterministic under a seed)."""
    declared = {p.name: (node, p) for node in model.nodes for p in node.params}
    for block in blocks:
        for name, param in block.ir_parameters().items():
            node, p = declared[name]
            draw(param, rule(node, p, scheme_of(node, model)))


@torch.no_grad()
def draw(param: Tensor, how: Rule) -> None:
    """`param` drawn in place from `how`, with torch's random generator."""
    match how.draw:
        case "glorot_uniform":
            nn.init.xavier_uniform_(param)  # fans from the trailing axes, as Keras's
        case "orthogonal":
            nn.init.orthogonal_(param)
        case "uniform":
            nn.init.uniform_(param, -how.scale, how.scale)
        case "normal":
            nn.init.normal_(param, 0.0, how.scale)
        case "constant":
            nn.init.constant_(param, how.scale)
    if how.forget is not None:
        param[forget_quarter(param.shape[0])] = how.forget
