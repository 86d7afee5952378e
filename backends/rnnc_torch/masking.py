"""Skipping masked steps anywhere (rnnc.layers.masking) in torch: `masking`, and the step
mask of an embedding with `mask_zero: anywhere`.

`keep_first` moves each sequence's kept steps to its front, in order, and returns their
count as the lengths, so every later block sees the skipped steps as trailing padding,
which it already keeps out of every real result (a recurrent layer's state passes over
them unchanged, a pool ignores them). The values are moved by a gather, so gradients
reach the kept steps exactly as they would unmoved. The ONNX backend does the same in
its own lowering.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnc import ir

from .block import Block, step_mask


def keep_first(x: Tensor, kept: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """`x` `[batch, time, ...]` with each row's `kept` steps (`[batch, time]` bool, and
    within `lengths`) first, in order, and their count."""
    steps = x.shape[1]
    if lengths is not None:
        kept = kept & step_mask(lengths, steps)
    positions = torch.arange(steps, device=x.device)
    order = torch.where(kept, positions, positions + steps).argsort(dim=1)  # distinct keys: kept steps in order
    index = order.view(*order.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index), kept.sum(dim=1)


class MaskingBlock(Block):
    """Skips the steps whose features all equal `mask_value`."""

    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.Masking)
        self.mask_value = node.layer.mask_value

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return keep_first(x, (x != self.mask_value).any(dim=-1), lengths)
